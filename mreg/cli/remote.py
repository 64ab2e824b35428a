"""``mreg remote add|modify|list|remove``."""

from __future__ import annotations

from typing import Annotated

import typer

from mreg.cli.options import Json, open_repo, print_json, shown, stdout
from mreg.cli.root import app

remote_app = typer.Typer(
    help="Manage remotes (S3, GCS, Azure, SSH, HTTP or local directories).", no_args_is_help=True
)
URL_FORMS = "s3://, gs://, az:// or abfs://, ssh:// or sftp://, https:// (read-only) or a folder"
app.add_typer(remote_app, name="remote")


# Options that `remote add` and `remote modify` share, declared once.
EndpointUrl = Annotated[
    str | None, typer.Option(help="S3 or GCS endpoint (MinIO, SeaweedFS, an emulator).")
]
Region = Annotated[str | None, typer.Option(help="S3 region.")]
Profile = Annotated[str | None, typer.Option(help="AWS profile for credentials.")]
LocalSecret = Annotated[
    str | None, typer.Option(help="Stored in git-ignored .mreg/config.local.toml only.")
]
AccountName = Annotated[str | None, typer.Option(help="Azure storage account.")]
AccountKey = Annotated[
    str | None, typer.Option(help="Azure account key; in git-ignored config.local.toml only.")
]
ConnectionString = Annotated[
    str | None,
    typer.Option(help="Azure connection string; in git-ignored config.local.toml only."),
]
CredentialsFile = Annotated[
    str | None,
    typer.Option(help="Google service-account JSON; its path goes to config.local.toml only."),
]


@remote_app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Remote name.")],
    url: Annotated[str, typer.Argument(help=URL_FORMS)],
    default: Annotated[bool, typer.Option("--default", "-d", help="Make it the default.")] = False,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    access_key_id: LocalSecret = None,
    secret_access_key: LocalSecret = None,
    account_name: AccountName = None,
    account_key: AccountKey = None,
    connection_string: ConnectionString = None,
    credentials_file: CredentialsFile = None,
) -> None:
    """Add a remote; credentials never go into the committed config."""
    from mreg.config import RemoteConfig  # loaded with the repository, not at start-up

    config = open_repo().config
    config.add_remote(
        RemoteConfig(
            name=name,
            url=url,
            endpoint_url=endpoint_url,
            region=region,
            profile=profile,
            access_key_id=access_key_id,
            secret_access_key=secret_access_key,
            account_name=account_name,
            account_key=account_key,
            connection_string=connection_string,
            credentials_file=credentials_file,
        ),
        default=default,
    )
    stdout.print(f"remote '{name}' -> {url}")


@remote_app.command("modify")
def modify(
    name: Annotated[str, typer.Argument(help="Remote name.")],
    url: Annotated[str | None, typer.Option(help=URL_FORMS)] = None,
    endpoint_url: EndpointUrl = None,
    region: Region = None,
    profile: Profile = None,
    access_key_id: LocalSecret = None,
    secret_access_key: LocalSecret = None,
    account_name: AccountName = None,
    account_key: AccountKey = None,
    connection_string: ConnectionString = None,
    credentials_file: CredentialsFile = None,
    local: Annotated[
        bool,
        typer.Option(
            "--local",
            help="Keep every setting in git-ignored .mreg/config.local.toml (this clone's own), "
            "not only the secrets.",
        ),
    ] = False,
) -> None:
    """Change settings of an existing remote (add your own credentials, a clone's own path)."""
    from mreg.config import SECRET_KEYS

    given = {
        "url": url,
        "endpoint_url": endpoint_url,
        "region": region,
        "profile": profile,
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "account_name": account_name,
        "account_key": account_key,
        "connection_string": connection_string,
        "credentials_file": credentials_file,
    }
    settings = {key: value for key, value in given.items() if value is not None}
    open_repo().config.modify_remote(name, settings, local=local)
    for key in sorted(settings):
        private = local or key in SECRET_KEYS
        where = ".mreg/config.local.toml" if private else ".mreg/config.toml"
        stdout.print(f"remote '{name}': {key} set in {where}")


@remote_app.command("list")
def list_(json: Json = False) -> None:
    """List remotes (the default one is marked with *)."""
    from mreg.config import mask_url

    config = open_repo().config
    default = config.default_remote_name()
    remotes = config.remotes()
    if json:
        print_json(
            [
                {
                    "name": r.name,
                    "url": mask_url(r.url),
                    "endpoint_url": r.endpoint_url and mask_url(r.endpoint_url),
                    "region": r.region,
                    "default": r.name == default,
                }
                for r in remotes.values()
            ]
        )
        return
    for r in remotes.values():
        mark = "*" if r.name == default else " "
        extra = f" (endpoint {shown(mask_url(r.endpoint_url))})" if r.endpoint_url else ""
        stdout.print(f"{mark} {shown(r.name)}\t{shown(mask_url(r.url))}{extra}")


@remote_app.command("remove")
def remove(name: Annotated[str, typer.Argument(help="Remote name.")]) -> None:
    """Remove a remote."""
    open_repo().config.remove_remote(name)
    stdout.print(f"remote '{name}' removed")
