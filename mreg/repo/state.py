"""Local, untracked knowledge about the work tree (``.mreg/state.json``).

Hashing a large file on every ``mreg status`` would be slow, so the sha256 of each artifact file
is remembered with its size, mtime and inode. It also remembers which file checkout produced from
which manifest, because formats restored "equivalent" (not byte-exact) give a file whose sha256
differs from the original's, and that file is still in sync.

Cache files are remembered the same way when their sha256 is checked on the way in (fetch, add):
a cache file whose size, mtime and inode are unchanged since then needs no second hashing on
checkout. ``mreg verify`` still re-hashes everything.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mreg.atomic import atomic_write_text
from mreg.hashing import sha256_path, tree_files


def _fingerprint(path: Path) -> list[int] | None:
    """Size, mtime and inode of a file; for a folder, sums and maxima over its files."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    if not path.is_dir():
        return [stat.st_size, stat.st_mtime_ns, stat.st_ino]
    files = tree_files(path)
    stats = [p.stat() for p in files]
    names = "\0".join(p.relative_to(path).as_posix() for p in files)
    return [
        sum(s.st_size for s in stats),
        max((s.st_mtime_ns for s in stats), default=stat.st_mtime_ns),
        sum(s.st_ino for s in stats),
        int(hashlib.sha256(names.encode()).hexdigest()[:15], 16),
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

    def remember_restored(self, relpath: str, content_key: str, sha256: str) -> None:
        with self._lock:
            self._data["restored"][relpath] = {"content": content_key, "sha256": sha256}
            self._save()

    def restored_sha256(self, relpath: str, content_key: str) -> str | None:
        entry = self._data["restored"].get(relpath)
        return str(entry["sha256"]) if entry and entry["content"] == content_key else None

    def _save(self) -> None:
        with self._lock:
            if self._deferred:
                self._dirty = True
                return
            self._dirty = False
            if os.access(self.path.parent, os.W_OK):
                atomic_write_text(self.path, json.dumps(self._data, sort_keys=True))
