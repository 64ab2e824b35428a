"""The cache's data files: immutable Lance files under ``.mreg/cache/data/``, and the staging
area ``.mreg/tmp/`` that conversions and downloads write into first.

Reads are checked: a process hashes every cache file before its first use (``check``), unless
it wrote or downloaded the file itself, and a file that does not match leaves the cache.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

from mreg.atomic import move, owned_prefix, remove_stale
from mreg.errors import IntegrityError, MissingData, local_faults
from mreg.hashing import sha256_file, sha256_files
from mreg.repo.manifest import FileEntry
from mreg.repo.state import State

# Cache files whose sha256 this process computed (on the way in, or before first use), by path,
# with their (size, mtime, ctime, inode) then. Bytes at rest can rot without any of these
# changing, so no other process's word is taken for it: each process hashes a file once.
_checked: dict[str, tuple[int, int, int, int]] = {}


def _stamp(path: Path) -> tuple[int, int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)


class CacheFiles:
    """The data files of the cache (``Cache`` adds the Lance views built from them)."""

    def __init__(self, mreg_dir: Path, state: State) -> None:
        self.root = mreg_dir / "cache"
        self.tmp = mreg_dir / "tmp"
        self.state = state

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def has(self, entry: FileEntry) -> bool:
        """Present with the recorded size (``verify`` re-hashes; this is the cheap check)."""
        try:
            return self.path(entry.path).stat().st_size == entry.size
        except FileNotFoundError:
            return False

    def missing(self, entries: Iterable[FileEntry]) -> list[FileEntry]:
        return [e for e in entries if not self.has(e)]

    def all_files(self) -> dict[str, int]:
        data = self.root / "data"
        if not data.exists():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size
            for p in data.rglob("*")
            if p.is_file()
        }

    @contextlib.contextmanager
    def staging(self, suffix: str = "", folder: Path | None = None) -> Iterator[Path]:
        """A fresh temporary directory (in ``.mreg/tmp``, or in ``folder``), removed afterwards
        whatever happens. A full or read-only disk inside is an error naming the folder."""
        with local_faults(folder or self.tmp):
            folder = self.scratch(folder or self.tmp)
            path = Path(tempfile.mkdtemp(dir=folder, prefix=owned_prefix("stage"), suffix=suffix))
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)

    def scratch(self, folder: Path | None = None) -> Path:
        """``folder`` (default ``.mreg/tmp``), made if needed and cleared of what killed mreg
        processes left there."""
        folder = folder or self.tmp
        folder.mkdir(parents=True, exist_ok=True)
        remove_stale(folder)
        return folder

    def ingest(self, dataset_dir: Path, relpaths: Iterable[str]) -> list[FileEntry]:
        """Hash staged Lance files and move them into the cache; returns their entries."""
        ordered = sorted(relpaths)
        sources = [dataset_dir / relpath for relpath in ordered]
        digests = sha256_files(sources)
        entries = [
            FileEntry(relpath, source.stat().st_size, digest)
            for relpath, source, digest in zip(ordered, sources, digests, strict=True)
        ]
        self.place(dataset_dir, entries)
        return entries

    def place(self, dataset_dir: Path, entries: Iterable[FileEntry]) -> None:
        """Move staged Lance files whose size and sha256 were computed by whoever wrote them
        (``ingest``, or a Ray task on this machine) into the cache."""
        with self.state.batch():
            for entry in entries:
                target = self.path(entry.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                move(dataset_dir / entry.path, target)
                self._remember_checked(entry)

    def receive(self, entry: FileEntry, downloaded: Path, actual: str) -> None:
        """Move a downloaded file into the cache, only if ``actual``, the sha256 computed while
        it was written, is the recorded one."""
        if actual != entry.sha256:
            downloaded.unlink(missing_ok=True)
            raise IntegrityError(
                f"{entry.path}: downloaded bytes have sha256 {actual[:12]}…, "
                f"the manifest records {entry.sha256[:12]}…",
                hint="the remote copy is corrupt: `mreg verify --remote R` names every such "
                "file; `mreg push --repair` from a clone with good copies replaces them",
            )
        target = self.path(entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        move(downloaded, target)
        self._remember_checked(entry)

    def is_checked(self, entry: FileEntry) -> bool:
        """This process computed the file's sha256 (it was the recorded one), and the file has
        not changed since (same size, mtime, ctime and inode): reading it needs no hashing."""
        path = self.path(entry.path)
        known = _checked.get(str(path))
        return known is not None and known == _stamp(path)

    def check(self, entries: Iterable[FileEntry], name: str) -> None:
        """Make sure every file of ``entries`` has its recorded sha256 before it is read: the
        ones this process has not hashed yet are hashed (on several threads). A corrupt file is
        removed from the cache, so that a fetch gets it again, and IntegrityError names it."""
        entries = list(entries)
        absent = self.missing(entries)
        if absent:
            raise MissingData(
                f"'{name}' is missing {len(absent)} data file(s) from the cache",
                hint=f"run `mreg fetch {name}` (or `mreg pull`)",
            )
        todo = [e for e in entries if not self.is_checked(e)]
        digests = sha256_files([self.path(e.path) for e in todo])
        corrupt = []
        for entry, digest in zip(todo, digests, strict=True):
            if digest == entry.sha256:
                self._remember_checked(entry)
            else:
                self.path(entry.path).unlink(missing_ok=True)
                corrupt.append(entry.path)
        if corrupt:
            raise IntegrityError(
                f"'{name}': {len(corrupt)} cache file(s) do not match their recorded sha256 "
                f"(first: {corrupt[0]}); removed them from the cache",
                hint=f"run `mreg pull {name}` to fetch them again",
            )

    def forget(self, relpaths: Iterable[str]) -> None:
        """Drop what is remembered about cache files that were deleted."""
        for relpath in relpaths:
            _checked.pop(str(self.path(relpath)), None)

    def _remember_checked(self, entry: FileEntry) -> None:
        path = self.path(entry.path)
        stamp = _stamp(path)
        if stamp is not None:
            _checked[str(path)] = stamp

    def temp_file(self) -> Path:
        """A name for a download in ``.mreg/tmp`` (see ``scratch``, which a fetch runs first)."""
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"{owned_prefix('download')}{uuid.uuid4().hex}"

    def verify(self, entry: FileEntry) -> str | None:
        """None when the cached file has the recorded sha256, else what is wrong."""
        path = self.path(entry.path)
        if not path.exists():
            return "missing from cache"
        if sha256_file(path) != entry.sha256:
            return "corrupt in cache (sha256 mismatch)"
        return None
