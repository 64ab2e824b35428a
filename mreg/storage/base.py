"""The small interface every remote implements. Paths are relative (``data/...``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mreg.progress import Advance
from mreg.storage.landing import Landing


@dataclass(frozen=True)
class StoredFile:
    """A file on a remote: its size, and when the store last wrote it (seconds since the epoch,
    by the store's clock: S3's LastModified, a local file's mtime)."""

    size: int
    modified: float


class Store(Protocol):
    """A flat namespace of immutable files, addressed by relative path."""

    description: str

    def list_files(self) -> dict[str, int]:
        """Every file under ``data/`` with its size."""
        ...

    def listing(self) -> dict[str, StoredFile]:
        """Every file under ``data/`` with its size and age."""
        ...

    def upload(self, source: Path, relpath: str, advance: Advance) -> None:
        """Copy ``source`` to ``relpath``; the object is visible only once complete."""
        ...

    def download(self, relpath: str, landing: Landing, advance: Advance) -> str:
        """Copy ``relpath`` (``landing.size`` bytes, as the manifest records) into ``landing``
        (a temporary file the caller verifies and renames, and its copies); returns the sha256
        of the bytes, computed on the way."""
        ...

    def delete(self, relpath: str) -> None:
        """Remove ``relpath``; removing a missing file is not an error."""
        ...
