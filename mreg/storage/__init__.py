"""Remotes and the transfers between them and the local cache."""

from __future__ import annotations

from pathlib import Path

from mreg.config import RemoteConfig
from mreg.storage.base import Store


def open_store(remote: RemoteConfig, repo_root: Path, jobs: int = 8) -> Store:
    """The Store behind ``remote``: S3 for ``s3://`` URLs, else a local directory."""
    if remote.is_s3:
        from mreg.storage.s3 import S3Store

        return S3Store(remote, jobs=jobs)
    from mreg.storage.local import LocalStore

    root = Path(remote.url.removeprefix("file://")).expanduser()
    if not root.is_absolute():
        root = repo_root / root
    return LocalStore(root.resolve(), remote.name)


__all__ = ["Store", "open_store"]
