"""Local, untracked knowledge about the work tree (``.mreg/state.json``).

Hashing a large file on every ``mreg status`` would be slow, so the sha256 of each artifact file
is remembered with its size, mtime, ctime and inode. It also remembers, per artifact path, the
bytes mreg *holds* there: the digest of what checkout wrote or ``mreg add`` hashed, the content
(manifest) it stands for, and the cache files holding that content. Formats restored
"equivalent" (not byte-exact) give a file whose sha256 differs from the original's, and that
file is still in sync; and a file whose digest is the held one can be overwritten or removed
without losing anything, because the cache has its data.

Cache files are not remembered here: whether one was hashed is only trusted within the process
that hashed it (see ``Cache.check``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mreg.atomic import atomic_write_text
from mreg.hashing import sha256_path, tree_files
from mreg.repo.manifest import FileEntry, Manifest


@dataclass(frozen=True)
class Held:
    """Bytes mreg wrote or added at an artifact path: their digest, the cache files holding
    their content (no sha256: only presence is checked), a folder's file names."""

    sha256: str
    files: tuple[FileEntry, ...] | None  # None: recorded by an mreg that did not list them
    names: tuple[str, ...]


def _fingerprint(path: Path) -> list[int] | None:
    """Size, mtime and inode of a file; for a folder, sums and maxima over its files."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    # ctime too: an edit in place whose mtime was put back still moves it.
    if not path.is_dir():
        return [stat.st_size, stat.st_mtime_ns, stat.st_ino, stat.st_ctime_ns]
    files = tree_files(path)
    stats = [p.stat() for p in files]
    names = "\0".join(p.relative_to(path).as_posix() for p in files)
    return [
        sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=stat.st_mtime_ns),
        sum(s.st_ino for s in stats),
        int(hashlib.sha256(names.encode()).hexdigest()[:15], 16),
        max((s.st_ctime_ns for s in stats), default=stat.st_ctime_ns),
    ]


class State:
    def __init__(self, mreg_dir: Path, root: Path) -> None:
        self.path = mreg_dir / "state.json"
        self.root = root
        try:
            self._data: dict[str, Any] = json.loads(self.path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self._data = {}
        self._data.setdefault("hashes", {})
        self._data.setdefault("restored", {})
        # Downloads finish on many threads; one lock keeps the dict and its file consistent.
        self._lock = threading.RLock()
        self._deferred = 0
        self._dirty = False

    def file_sha256(self, relpath: str) -> str | None:
        """sha256 of the work-tree file, or None when it does not exist."""
        path = self.root / relpath
        fingerprint = _fingerprint(path)
        if fingerprint is None:
            return None
        remembered = self._remembered(relpath, fingerprint)
        if remembered is not None:
            return remembered
        digest = sha256_path(path)
        self._store_hash(relpath, fingerprint, digest)
        return digest

    def known_sha256(self, relpath: str) -> str | None:
        """The remembered sha256 of a file unchanged since it was hashed; never hashes."""
        return self._remembered(relpath, _fingerprint(self.root / relpath))

    def _remembered(self, relpath: str, fingerprint: list[int] | None) -> str | None:
        cached = self._data["hashes"].get(relpath)
        if not cached or fingerprint is None or cached[:-1] != fingerprint:
            return None
        return str(cached[-1])

    def remember_sha256(self, relpath: str, sha256: str) -> None:
        """Record that the file at ``relpath`` (as it is now) has ``sha256``."""
        fingerprint = _fingerprint(self.root / relpath)
        if fingerprint is not None:
            self._store_hash(relpath, fingerprint, sha256)

    def forget(self, relpaths: list[str]) -> None:
        with self._lock:
            for relpath in relpaths:
                self._data["hashes"].pop(relpath, None)
            self._save()

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Write the state file once at the end instead of after every change."""
        with self._lock:
            self._deferred += 1
        try:
            yield
        finally:
            with self._lock:
                self._deferred -= 1
                if not self._deferred and self._dirty:
                    self._save()

    def _store_hash(self, relpath: str, fingerprint: list[int], sha256: str) -> None:
        with self._lock:
            self._data["hashes"][relpath] = [*fingerprint, sha256]
            self._save()

    def remember_held(self, relpath: str, manifest: Manifest, sha256: str) -> None:
        """Record that the artifact at ``relpath``, with digest ``sha256`` (computed by the
        caller from the bytes), is ``manifest``'s content, which the cache holds; for a folder,
        which files it has."""
        path = self.root / relpath
        entry: dict[str, Any] = {
            "content": manifest.content_key(),
            "sha256": sha256,
            "files": [[f.path, f.size] for f in manifest.files],
        }
        if path.is_dir():
            entry["names"] = [p.relative_to(path).as_posix() for p in tree_files(path)]
        with self._lock:
            self._data["restored"][relpath] = entry
            self._save()

    def restored_sha256(self, relpath: str, content_key: str) -> str | None:
        entry = self._data["restored"].get(relpath)
        return str(entry["sha256"]) if entry and entry["content"] == content_key else None

    def held(self, relpath: str) -> Held | None:
        """What mreg last wrote or added at ``relpath``, if anything."""
        entry = self._data["restored"].get(relpath)
        if not entry:
            return None
        files = entry.get("files")
        return Held(
            str(entry["sha256"]),
            None if files is None else tuple(FileEntry(path, size, "") for path, size in files),
            tuple(entry.get("names", ())),
        )

    def held_paths(self) -> list[str]:
        return sorted(self._data["restored"])

    def moved(self, old: str, new: str) -> None:
        """The artifact at ``old`` is now at ``new`` (renamed, bytes unchanged): what mreg
        knows about it follows it."""
        with self._lock:
            for table in ("restored", "hashes"):
                entry = self._data[table].pop(old, None)
                if entry is not None:
                    self._data[table][new] = entry
            self._save()

    def forget_held(self, relpath: str) -> None:
        with self._lock:
            self._data["restored"].pop(relpath, None)
            self._data["hashes"].pop(relpath, None)
            self._save()

    def _save(self) -> None:
        with self._lock:
            if self._deferred:
                self._dirty = True
                return
            self._dirty = False
            if os.access(self.path.parent, os.W_OK):
                atomic_write_text(self.path, json.dumps(self._data, sort_keys=True))
