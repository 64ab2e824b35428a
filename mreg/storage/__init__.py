"""Remotes and the transfers between them and the local cache."""

from __future__ import annotations

from pathlib import Path

from mreg.config import RemoteConfig
from mreg.storage.base import Store


def open_store(remote: RemoteConfig, repo_root: Path, jobs: int = 8) -> Store:
    """The Store behind ``remote``: S3 (boto3) for ``s3://``, fsspec for GCS, Azure, SSH and
    HTTP URLs, else a local directory."""
    if remote.is_s3:
        from mreg.storage.s3 import S3Store

        return S3Store(remote, jobs=jobs)
    if remote.kind != "local":
        from mreg.storage.fsspec_remote import FsspecStore

        return FsspecStore(remote, jobs=jobs)
    from mreg.storage.local import LocalStore

    return LocalStore(_local_root(remote, repo_root), remote.name, remote.url)


def probe(remote: RemoteConfig, repo_root: Path, timeout: float = 3.0) -> None:
    """Check that ``remote`` answers within ``timeout`` seconds (an S3 listing of one object;
    its bucket, container or folder for the others; a local folder that exists); RemoteError
    saying what is wrong otherwise."""
    if remote.is_s3:
        from mreg.storage.s3 import probe as probe_s3

        probe_s3(remote, timeout)
        return
    if remote.kind != "local":
        from mreg.storage.fsspec_remote import FsspecStore

        FsspecStore(remote, jobs=1).probe()
        return
    from mreg.storage.local import LocalStore

    store = LocalStore(_local_root(remote, repo_root), remote.name, remote.url)
    if not store.root.is_dir():
        raise store.missing_root()


def lance_location(remote: RemoteConfig, repo_root: Path) -> tuple[str, dict[str, str] | None]:
    """Where Lance finds ``remote``'s root (the folder whose ``data/`` holds what push wrote),
    and the ``storage_options`` that reach it (None for a local directory)."""
    if remote.kind == "local":
        return str(_local_root(remote, repo_root)), None
    if not remote.is_s3:
        from mreg.storage.fsspec_remote import lance_location as fsspec_location

        return fsspec_location(remote)
    from mreg.storage.s3 import lance_storage_options, split_url

    bucket, prefix = split_url(remote.url)
    return f"s3://{bucket}/{prefix}".rstrip("/"), lance_storage_options(remote)


def portable(remote: RemoteConfig) -> RemoteConfig:
    """``remote`` as a process on another machine (a Ray worker) must be given it: an S3
    remote's credentials resolved here (config.local.toml, AWS variables, profiles) and frozen
    into it, since that machine has none of this one's environment. The secrets stay out of the
    config's repr; the other kinds are returned as they are (their platforms' own sources)."""
    if not remote.is_s3:
        return remote
    from mreg.storage.s3 import with_credentials

    return with_credentials(remote)


def _local_root(remote: RemoteConfig, repo_root: Path) -> Path:
    """The folder of a local remote; a relative one lies relative to the repository root (not
    the current folder), whatever folder of the work tree a command runs in."""
    root = Path(remote.url.removeprefix("file://")).expanduser()
    if not root.is_absolute():
        root = repo_root / root
    return root.resolve()


__all__ = ["Store", "lance_location", "open_store", "portable", "probe"]
