"""Atomic writes: a reader sees the old file or the whole new one, never half of it."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from mreg.errors import local_faults

# The temporary file of ``path`` is ``.NAME.XXXXXXXX.tmp`` beside it (mkstemp's 8 characters).
_TEMPORARY = "[a-z0-9_]{8}"


class PendingFile:
    """A temporary file beside ``path`` (created empty) that ``commit`` renames over ``path``
    and ``discard`` removes; for writers that fill it in several steps."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        os.close(fd)
        self.path = path
        self.temporary = Path(name)

    def commit(self) -> None:
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temporary)


@contextlib.contextmanager
def atomic_output(path: Path, durable: bool = True) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    ``durable`` flushes the bytes to disk before the rename. Files that can be rebuilt (restored
    artifacts) skip it: an fsync of a 1 GiB file costs about 0.4 s here, git does not fsync work
    tree files either, and a file cut short by a power loss differs in size from what the state
    remembers, so ``mreg status`` reports it and ``mreg checkout`` rewrites it.
    """
    with local_faults(path):
        pending = PendingFile(path)
        try:
            with open(pending.temporary, "r+b") as handle:
                yield handle
                handle.flush()
                if durable:
                    os.fsync(handle.fileno())
            pending.commit()
        except BaseException:
            pending.discard()
            raise


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_output(path) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def move_file(source: Path, target: Path) -> None:
    """Move ``source`` to ``target`` in one rename; across file systems (a cache on another
    disk than ``.mreg/tmp``), copy into a temporary file beside ``target`` and rename that, so
    ``target`` is never seen half-written either."""
    try:
        os.replace(source, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    with atomic_output(target) as out, open(source, "rb") as handle:
        shutil.copyfileobj(handle, out, 8 << 20)
    os.unlink(source)


def sweep_leftovers(paths: Iterable[Path]) -> None:
    """Remove the temporary files that writers of ``paths`` left behind when they were killed
    (SIGKILL, a power cut: no ``finally`` runs). Call it only under the repository lock: a
    live writer's temporary file looks the same."""
    by_folder: dict[Path, set[str]] = {}
    for path in paths:
        by_folder.setdefault(path.parent, set()).add(path.name)
    for folder, names in by_folder.items():
        alternatives = "|".join(re.escape(name) for name in sorted(names))
        pattern = re.compile(rf"\.(?:{alternatives})\.{_TEMPORARY}\.tmp")
        try:
            entries = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            if pattern.fullmatch(entry):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(folder / entry)
