"""The small interface every remote implements. Paths are relative (``data/...``)."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from mreg.progress import Advance


class Store(Protocol):
    """A flat namespace of immutable files, addressed by relative path."""

    description: str

    def list_files(self) -> dict[str, int]:
        """Every file under ``data/`` with its size."""
        ...

    def upload(self, source: Path, relpath: str, advance: Advance) -> None:
        """Copy ``source`` to ``relpath``; the object is visible only once complete."""
        ...

    def download(self, relpath: str, size: int, dest: Path, advance: Advance) -> str | None:
        """Copy ``relpath`` (``size`` bytes, as the manifest records) into ``dest``, a temporary
        path the caller verifies and renames.

        Returns the sha256 of what was written when it was computed on the way, else None.
        """
        ...

    def delete(self, relpath: str) -> None:
        """Remove ``relpath``; removing a missing file is not an error."""
        ...
