"""A remote that is a directory on this machine (or a mounted share)."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

from mreg.atomic import PendingFile
from mreg.errors import RemoteError, RemoteFileMissing
from mreg.progress import Advance
from mreg.storage.base import StoredFile
from mreg.storage.landing import Landing, stream_into


class LocalStore:
    """Files under ``root``; uploads land in a temp file first, then one rename."""

    def __init__(self, root: Path, name: str, url: str | None = None) -> None:
        self.root = root
        self.name = name
        self.url = url or str(root)
        self.description = f"remote '{name}' ({root})"

    def list_files(self) -> dict[str, int]:
        return {relpath: stored.size for relpath, stored in self.listing().items()}

    def listing(self) -> dict[str, StoredFile]:
        data = self.root / "data"
        if not data.exists():
            return {}
        files = {}
        for path in data.rglob("*"):
            if path.is_file() and not path.name.startswith("."):
                stat = path.stat()
                files[path.relative_to(self.root).as_posix()] = StoredFile(
                    stat.st_size, stat.st_mtime
                )
        return files

    def upload(self, source: Path, relpath: str, advance: Advance) -> None:
        target = self.root / relpath
        try:
            pending = PendingFile(target)  # the user's umask mode: teammates read this folder
            try:
                shutil.copyfile(source, pending.temporary)
                pending.commit()
            finally:
                pending.discard()
        except OSError as error:
            raise RemoteError(f"{self.description}: cannot write {relpath}: {error}") from None
        advance(source.stat().st_size)

    def download(self, relpath: str, landing: Landing, advance: Advance) -> str:
        source = self.root / relpath
        try:
            with open(source, "rb", buffering=0) as handle:
                return stream_into(landing, handle.readinto, advance)
        except FileNotFoundError:
            if not self.root.is_dir():
                raise self.missing_root() from None
            raise RemoteFileMissing(f"{self.description} has no file {relpath}") from None
        except OSError as error:
            raise RemoteError(f"{self.description}: cannot read {relpath}: {error}") from None

    def missing_root(self) -> RemoteError:
        """The remote's folder is not there: a relative URL says from where it was resolved."""
        given = self.url.removeprefix("file://")
        relative = not Path(given).expanduser().is_absolute()
        how = f" ('{given}', relative to the repository root)" if relative else ""
        return RemoteError(
            f"remote '{self.name}' is {self.root}{how}, which does not exist",
            hint=f"mount or create it, or set this clone's own path: `mreg remote modify "
            f"{self.name} --url PATH --local` (kept in git-ignored .mreg/config.local.toml)",
        )

    def delete(self, relpath: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.root / relpath).unlink()
