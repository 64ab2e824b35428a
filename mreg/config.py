"""Configuration: ``.mreg/config.toml`` (committed) overlaid by ``.mreg/config.local.toml``
(git-ignored, for credentials) and by environment variables.

Credentials never enter the committed file: ``add_remote`` writes them to the local file only,
and refuses a URL that carries them (``s3://KEY:SECRET@bucket``); a URL that does anyway (a
cloned repository's config) is refused when used and masked when listed.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mreg import toml_writer
from mreg.atomic import atomic_write_text
from mreg.errors import MregError, RemoteError, UsageError

CONFIG = "config.toml"
LOCAL_CONFIG = "config.local.toml"
# Kept in the git-ignored config.local.toml only: secrets, and a key file's path on this machine.
SECRET_KEYS = (
    "access_key_id",
    "secret_access_key",
    "session_token",
    "account_key",
    "connection_string",
    "credentials_file",
)


@dataclass(frozen=True)
class RemoteConfig:
    """Where a remote lives and how to reach it; secrets come from the local file or AWS."""

    name: str
    url: str
    endpoint_url: str | None = None
    region: str | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    account_name: str | None = None  # Azure storage account
    account_key: str | None = field(default=None, repr=False)  # Azure shared key
    connection_string: str | None = field(default=None, repr=False)  # Azure
    credentials_file: str | None = None  # Google service-account JSON on this machine

    @property
    def is_s3(self) -> bool:
        return self.url.startswith("s3://")

    @property
    def kind(self) -> str:
        """Which store holds this remote (a value of SCHEMES, ``local`` for a plain path)."""
        scheme = url_scheme(self.url)
        return "local" if scheme is None else SCHEMES[scheme]


# The URL schemes a remote may have, and the kind of store each names; a URL without a scheme
# is a local directory. Any other scheme is refused: it would otherwise become a local folder
# named after the URL (``gs:/bucket``) inside the work tree.
SCHEMES = {
    "s3": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "ssh": "ssh",
    "sftp": "ssh",
    "https": "http",
    "http": "http",
    "file": "local",
}
# In these URLs ``name@`` is a user (ssh) or a container (abfs), not a credential.
_NAMED_AUTHORITY = ("ssh", "sftp", "az", "abfs", "abfss")


def url_scheme(url: str) -> str | None:
    """The lower-cased scheme of ``url`` (``s3`` for ``s3://b/p``), None for a plain path."""
    match = re.match(r"^([A-Za-z][A-Za-z0-9+.-]*)://", url)
    return match.group(1).lower() if match else None


def unsupported_scheme(url: str) -> str | None:
    """A sentence saying that ``url``'s scheme is not supported, or None when it is."""
    scheme = url_scheme(url)
    if scheme is None or scheme in SCHEMES:
        return None
    supported = ", ".join(f"{s}://" for s in SCHEMES)
    return (
        f"'{mask_url(url)}' has URL scheme '{scheme}://', which mreg does not support "
        f"(supported: {supported}, or a local directory)"
    )


# What the environment sets, beside the files: mreg's own variables and those boto3 reads for a
# remote that has no setting of its own.
ENVIRONMENT = (
    "MREG_REMOTE", "MREG_TRUSTED_MODULES", "MODEL_REGISTRY_PATH", "MREG_ZIP_MAX_BYTES",
    "MREG_ZIP_MAX_RATIO", "MREG_NO_PROGRESS", "AWS_PROFILE", "AWS_DEFAULT_PROFILE",
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_REGION",
    "AWS_DEFAULT_REGION", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
)  # fmt: skip
SECRET_VARIABLES = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
Source = Literal["committed", "local", "environment"]


@dataclass(frozen=True)
class Setting:
    """One effective setting, where it comes from, and the value shown (secrets masked)."""

    key: str
    value: Any
    source: Source


class Config:
    """The merged configuration of one repository."""

    def __init__(self, mreg_dir: Path) -> None:
        self.dir = mreg_dir
        self.shared = _read(mreg_dir / CONFIG)
        self.local = _read(mreg_dir / LOCAL_CONFIG)

    def remotes(self) -> dict[str, RemoteConfig]:
        """Every remote as configured, unchecked: ``remote(name)`` is the one to use."""
        names = {**self.shared.get("remote", {}), **self.local.get("remote", {})}
        return {name: self._configured(name) for name in sorted(names)}

    def default_remote_name(self) -> str | None:
        env = os.environ.get("MREG_REMOTE")
        if env:
            return env
        core = {**self.shared.get("core", {}), **self.local.get("core", {})}
        name = core.get("remote")
        return str(name) if name else None

    def remote(self, name: str | None = None) -> RemoteConfig:
        """The remote called ``name``, or the default one; RemoteError when there is none."""
        chosen = name or self.default_remote_name()
        if not chosen:
            raise RemoteError(
                "no remote given and no default remote set",
                hint="run `mreg remote add NAME URL --default` or pass -r NAME",
            )
        remote = self._configured(chosen)
        refusal = unsupported_scheme(remote.url)
        if refusal:
            raise RemoteError(
                f"remote '{chosen}': {refusal}",
                hint=f"set a supported URL: `mreg remote modify {chosen} --url URL`",
            )
        for what, url in (("URL", remote.url), ("endpoint URL", remote.endpoint_url)):
            if url and has_credentials(url):
                raise RemoteError(
                    f"remote '{chosen}' has credentials in its {what} ({mask_url(url)}) in "
                    ".mreg/config.toml; mreg does not use them",
                    hint=f"rotate that key, then `mreg remote remove {chosen}` and add it again "
                    "with --access-key-id/--secret-access-key (kept in git-ignored "
                    ".mreg/config.local.toml)",
                )
        return remote

    def _configured(self, chosen: str) -> RemoteConfig:
        fields = {
            **self.shared.get("remote", {}).get(chosen, {}),
            **self.local.get("remote", {}).get(chosen, {}),
        }
        if "url" not in fields:
            raise RemoteError(f"remote '{chosen}' is not configured", hint="see `mreg remote list`")
        known = {k: str(v) for k, v in fields.items() if k in RemoteConfig.__dataclass_fields__}
        return RemoteConfig(**{**known, "name": chosen})

    def add_remote(self, remote: RemoteConfig, default: bool) -> None:
        check_remote_name(remote.name)
        _check_urls(remote.name, remote.url, remote.endpoint_url)
        if remote.name in self.shared.get("remote", {}):
            raise UsageError(
                f"remote '{remote.name}' already exists",
                hint=f"run `mreg remote remove {remote.name}` first",
            )
        public = {
            k: v for k, v in vars(remote).items() if v and k != "name" and k not in SECRET_KEYS
        }
        secrets = {k: getattr(remote, k) for k in SECRET_KEYS if getattr(remote, k)}
        self.shared.setdefault("remote", {})[remote.name] = public
        if default or not self.default_remote_name():
            self.shared.setdefault("core", {})["remote"] = remote.name
        if secrets:
            self.local.setdefault("remote", {})[remote.name] = secrets
            self._save(LOCAL_CONFIG, self.local)
        self._save(CONFIG, self.shared)

    def modify_remote(self, name: str, settings: dict[str, str], local: bool = False) -> None:
        """Change some settings of remote ``name``: secrets always in the git-ignored
        config.local.toml, the others in the committed config.toml, or with ``local`` in
        config.local.toml too (this clone's own URL or endpoint, overriding the committed one)."""
        if name not in {**self.shared.get("remote", {}), **self.local.get("remote", {})}:
            raise UsageError(f"remote '{name}' does not exist", hint="see `mreg remote list`")
        unknown = set(settings) - set(RemoteConfig.__dataclass_fields__) - {"name"}
        if unknown or not settings:
            raise UsageError(
                f"nothing to change for remote '{name}'"
                + (f" (unknown: {', '.join(sorted(unknown))})" if unknown else ""),
                hint="pass --url, --endpoint-url, --region, --profile or "
                "--access-key-id with --secret-access-key",
            )
        if ("access_key_id" in settings) != ("secret_access_key" in settings):
            raise UsageError(
                "--access-key-id and --secret-access-key go together", hint="pass both"
            )
        _check_urls(name, settings.get("url"), settings.get("endpoint_url"))
        secrets = {k: v for k, v in settings.items() if k in SECRET_KEYS}
        public = {k: v for k, v in settings.items() if k not in SECRET_KEYS}
        if secrets or (local and public):
            entry = self.local.setdefault("remote", {}).setdefault(name, {})
            entry.update(secrets)
            entry.update(public if local else {})
            self._save(LOCAL_CONFIG, self.local)
        if public and not local:
            self.shared.setdefault("remote", {}).setdefault(name, {}).update(public)
            self._save(CONFIG, self.shared)

    def remove_remote(self, name: str) -> None:
        if name not in self.shared.get("remote", {}) and name not in self.local.get("remote", {}):
            raise UsageError(f"remote '{name}' does not exist", hint="see `mreg remote list`")
        for document, filename in ((self.shared, CONFIG), (self.local, LOCAL_CONFIG)):
            document.get("remote", {}).pop(name, None)
            if document.get("core", {}).get("remote") == name:
                del document["core"]["remote"]
            self._save(filename, document)

    def settings(self) -> list[Setting]:
        """Every effective setting: config.toml (committed), overlaid by config.local.toml
        (local), then the environment; secrets masked, credentials in URLs masked."""
        found: dict[str, Setting] = {}
        for document, source in ((self.shared, "committed"), (self.local, "local")):
            for key, value in _leaves(document):
                found[key] = Setting(key, _masked(key, value), source)  # type: ignore[arg-type]
        for variable in ENVIRONMENT:
            if os.environ.get(variable):
                value = os.environ[variable]
                shown = "****" if variable in SECRET_VARIABLES else _masked(variable, value)
                found[variable] = Setting(variable, shown, "environment")
        if os.environ.get("MREG_REMOTE"):  # it overrides core.remote
            found.pop("core.remote", None)
        return sorted(found.values(), key=lambda setting: setting.key)

    def _save(self, filename: str, document: dict[str, Any]) -> None:
        private = filename == LOCAL_CONFIG  # it holds secrets: its owner's eyes only
        mode = 0o600 if private else 0o666
        atomic_write_text(self.dir / filename, toml_writer.dumps(document), mode)


def _check_urls(name: str, url: str | None, endpoint_url: str | None) -> None:
    """Refuse a URL or endpoint that carries credentials, a URL scheme mreg does not support,
    and an S3 URL with no bucket."""
    for what, given in (("URL", url), ("endpoint URL", endpoint_url)):
        if given and has_credentials(given):
            raise UsageError(
                f"the {what} of remote '{name}' holds credentials "
                f"({mask_url(given)}): .mreg/config.toml is committed",
                hint="give the URL without them and pass --access-key-id/"
                "--secret-access-key, which go to the git-ignored .mreg/config.local.toml",
            )
    refusal = unsupported_scheme(url) if url else None
    if refusal:
        raise UsageError(refusal, hint="give a supported URL")
    if url and url.startswith("s3://") and not url.removeprefix("s3://").split("/")[0]:
        raise UsageError(f"'{url}' names no bucket", hint="use s3://BUCKET/PREFIX")


def _leaves(document: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``(dotted.key, value)`` for every value of a TOML document that is not a table."""
    found = []
    for key, value in document.items():
        if isinstance(value, dict):
            found.extend(_leaves(value, f"{prefix}{key}."))
        else:
            found.append((f"{prefix}{key}", value))
    return found


def _masked(key: str, value: Any) -> Any:
    """A secret as ``****``, an access key id by its first four characters, a URL without its
    credentials."""
    last = key.rpartition(".")[2].lower()
    if last in ("secret_access_key", "session_token", "account_key", "connection_string"):
        return "****"
    if last in ("access_key_id", "aws_access_key_id"):
        return str(value)[:4] + "****"
    return mask_url(value) if isinstance(value, str) else value


def check_remote_name(name: str) -> None:
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", name):
        raise UsageError(
            f"'{name}' is not a valid remote name",
            hint="use letters, digits, '.', '_' and '-'",
        )


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a ``user[:password]@`` part (``s3://KEY:SECRET@bucket``)."""
    return mask_url(url) != url


def mask_url(url: str) -> str:
    """``url`` with its ``user[:password]@`` part, if any, shown as ``***@``."""
    scheme, sep, rest = url.partition("://")
    authority, slash, path = rest.partition("/")
    if not sep:  # a local path: scp-like ``user:password@host:...`` in its first part
        authority, slash, path = url.partition("/")
        if not re.match(r"^[^@]*:[^@]*@", authority):
            return url
    if "@" not in authority:
        return url
    named = scheme.lower() in _NAMED_AUTHORITY and ":" not in authority.rpartition("@")[0]
    if sep and named:
        return url
    return f"{scheme}{sep}***@{authority.rpartition('@')[2]}{slash}{path}"


def _read(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as error:
        raise MregError(f"{path} is not valid TOML: {error}") from None
