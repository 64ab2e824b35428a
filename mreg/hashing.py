"""The one place that computes sha256 digests of files and buffers."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Collection
from concurrent.futures import Future, ThreadPoolExecutor
from mmap import mmap
from pathlib import Path
from typing import BinaryIO

CHUNK = 8 << 20
HASH_THREADS = max(2, min(8, os.cpu_count() or 2))


def sha256_file(path: Path) -> str:
    """Hex sha256 of the file's bytes, read in large chunks."""
    digest = hashlib.sha256()
    with open(path, "rb", buffering=0) as handle:
        # No larger than the file: zeroing an 8 MiB buffer for each 3 KiB image made hashing a
        # folder of 20,000 images take 10 s instead of 0.6 s. One byte more than the file, so
        # that the second read finds its end.
        buffer = bytearray(min(CHUNK, os.fstat(handle.fileno()).st_size + 1))
        view = memoryview(buffer)
        while read := handle.readinto(buffer):
            digest.update(view[:read])
    return digest.hexdigest()


def tree_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted, without following symbolic links."""
    found = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def path_size(path: Path, leave_out: Collection[str] = ()) -> int:
    """Bytes of a file, or of the files under a folder (``leave_out``: as in ``sha256_tree``)."""
    if not path.is_dir():
        return path.stat().st_size
    files = [p for p in tree_files(path) if p.relative_to(path).as_posix() not in leave_out]
    return sum(p.stat().st_size for p in files)


def sha256_tree(root: Path, leave_out: Collection[str] = ()) -> str:
    """One sha256 for a folder: of each file's relative path, size and sha256, in order.

    ``leave_out`` names relative posix paths to hash as if they were not there.
    """
    return tree_digest(sha256_listing(root, leave_out))


def sha256_listing(root: Path, leave_out: Collection[str] = ()) -> list[tuple[str, int, str]]:
    """(relative posix path, size, sha256) of every file under ``root``, in tree order."""
    files = [p for p in tree_files(root) if p.relative_to(root).as_posix() not in leave_out]
    return [
        (path.relative_to(root).as_posix(), path.stat().st_size, file_digest)
        for path, file_digest in zip(files, sha256_files(files), strict=True)
    ]


def tree_digest(listing: list[tuple[str, int, str]]) -> str:
    """The folder digest ``sha256_tree`` gives, from its listing."""
    digest = hashlib.sha256()
    for rel, size, file_digest in listing:
        digest.update(f"{rel}\0{size}\0{file_digest}\n".encode())
    return digest.hexdigest()


def sha256_files(paths: list[Path]) -> list[str]:
    """sha256 of many files, in order, on several threads (reads and hashlib release the GIL)."""
    if len(paths) < 2:
        return [sha256_file(p) for p in paths]
    with ThreadPoolExecutor(max_workers=HASH_THREADS, thread_name_prefix="mreg-hash") as pool:
        return list(pool.map(sha256_file, paths))


def sha256_path(path: Path) -> str:
    """sha256 of a file, or the tree digest of a folder."""
    return sha256_tree(path) if path.is_dir() else sha256_file(path)


def sha256_bytes(data: bytes | memoryview) -> str:
    """Hex sha256 of an in-memory buffer."""
    return hashlib.sha256(data).hexdigest()


class HashingWriter:
    """A write-only file wrapper that computes the sha256 of what passes through it, so a file
    can be checked as it is written instead of being read back.

    Large chunks backed by immutable ``bytes`` are hashed on a second thread while the next one
    is written (hashlib releases the GIL); anything a caller might reuse after ``write`` returns
    is hashed on the spot, so the digest is always of the bytes written.
    """

    ASYNC_MIN = 1 << 20

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self._position = 0
        self._pending: Future[None] | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mreg-hash")
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        if view.nbytes >= self.ASYNC_MIN and view.readonly and isinstance(view.obj, bytes | mmap):
            self._wait()
            self._pending = self._pool.submit(self._digest.update, view)
        else:
            self._wait()
            self._digest.update(view)
        self._raw.write(view)
        self._position += view.nbytes
        return view.nbytes

    def _wait(self) -> None:
        if self._pending is not None:
            self._pending.result()
            self._pending = None

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        self._raw.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        # The caller owns the underlying file; writers that close their sink must not end it.
        self.closed = True

    def hexdigest(self) -> str:
        self._wait()
        self._pool.shutdown()
        return self._digest.hexdigest()
