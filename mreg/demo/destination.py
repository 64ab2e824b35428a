"""Where the demo pushes: an S3 bucket given by the options, or a local directory.

Credentials never enter a committed file: ``Config.add_remote`` writes keys to the git-ignored
``.mreg/config.local.toml``; without keys, the standard AWS variables and profiles apply.
"""

from __future__ import annotations

from mreg.config import RemoteConfig
from mreg.demo.options import TrainOptions
from mreg.repo import Repo

S3_REMOTE = "demo-s3"
LOCAL_REMOTE = "demo-local"


def choose_remote(repo: Repo, options: TrainOptions) -> RemoteConfig:
    """The remote to push to, configured in ``repo`` if it is not yet.

    ``--bucket`` (with ``--s3-endpoint``, ``--aws-*``) gives the S3 remote ``demo-s3`` at
    ``s3://BUCKET/PREFIX``; otherwise the repository's default remote, or else a local
    directory in the download cache (``demo-local``).
    """
    if options.bucket:
        wanted = RemoteConfig(
            name=S3_REMOTE,
            url=f"s3://{options.bucket}/{options.prefix.strip('/')}".rstrip("/"),
            endpoint_url=options.s3_endpoint,
            region=options.aws_region,
            access_key_id=options.access_key,
            secret_access_key=options.secret_key,
        )
        return _configured(repo, wanted)
    default = repo.config.default_remote_name()
    if default:
        return repo.remote(default)
    folder = options.download_cache / "remote"
    return _configured(repo, RemoteConfig(name=LOCAL_REMOTE, url=str(folder)))


def _configured(repo: Repo, wanted: RemoteConfig) -> RemoteConfig:
    """``wanted``, added to the repository's config (replacing an older remote of that name)."""
    config = repo.config
    if wanted.name in config.remotes():
        current = config.remote(wanted.name)
        keys_kept = wanted.access_key_id is None
        if current == wanted or (keys_kept and _public(current) == _public(wanted)):
            return current
        config.remove_remote(wanted.name)
    config.add_remote(wanted, default=False)
    return config.remote(wanted.name)


def _public(remote: RemoteConfig) -> tuple[str | None, ...]:
    return (remote.url, remote.endpoint_url, remote.region, remote.profile)
