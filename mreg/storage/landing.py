"""Where a download's bytes land: a temporary file in the cache, and copies in the work tree.

``mreg pull`` of a large model would otherwise write every byte twice through the page cache:
once into the cache, then again when checkout copies the tensors into the restored file. A
landing writes each chunk, as it arrives, both into the cache file and into the spans of the
files being restored that hold the same bytes (``Copy``), so checkout only adds the header.

A landing whose every byte also goes to the work tree is written to the cache with ``O_DIRECT``:
this command will not read it again, and keeping it out of the page cache halves the fresh pages
a pull needs. On this project's machines (VMs that hand free memory back to the host) a fresh
page-cache page costs a host fault: 1 GiB took 2.5-3.3 s to write buffered against 0.6 s with
``O_DIRECT``. Where the file system refuses ``O_DIRECT`` (tmpfs, some network file systems) the
landing falls back to ordinary writes.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import mmap
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from mreg.atomic import O_BINARY
from mreg.errors import local_fault
from mreg.progress import Advance

# O_DIRECT wants addresses, offsets and lengths that are multiples of the device's logical
# block size: 512 or 4096 bytes on every disk we know, so 4096 serves all.
ALIGN = 4096
CHUNK = 4 << 20
DIRECT_IO = hasattr(os, "O_DIRECT")  # Linux and the BSDs; not macOS or Windows
_buffers = threading.local()


def chunk_buffer(size: int | None = None) -> memoryview:
    """A page-aligned buffer of ``size`` bytes (default CHUNK), one per thread and size, reused
    across downloads (fresh memory costs page faults; these are touched once)."""
    size = size or CHUNK
    buffers: dict[int, mmap.mmap] = _buffers.__dict__.setdefault("by_size", {})
    if size not in buffers:
        buffers[size] = mmap.mmap(-1, size)
    return memoryview(buffers[size])


@dataclass
class Copy:
    """Bytes ``start`` to ``start + length`` of a download also go to ``fd`` at ``offset``.

    ``landed`` turns True once the download is complete and its sha256 checked: only then do
    the copied bytes count (a failed download leaves a partial copy that must be written again).
    """

    fd: int
    offset: int
    start: int = 0
    length: int | None = None
    landed: bool = False
    path: Path | None = None  # what ``fd`` writes, to name in an error

    def span(self, size: int) -> tuple[int, int]:
        end = size if self.length is None else min(size, self.start + self.length)
        return self.start, end


class Landing:
    """The destination of one download of ``size`` bytes: ``path`` (None: the bytes are only
    hashed, as a remote check needs) and ``copies``.

    Writes come as ``write(offset, buffer, count)`` with ``buffer`` from ``chunk_buffer`` (or
    another page-aligned buffer), ``offset`` a multiple of ``ALIGN`` and ``count`` one too unless
    the chunk ends the file: what direct writes need. Writes may come from several threads.
    """

    def __init__(self, path: Path | None, size: int, copies: Sequence[Copy] = ()) -> None:
        self.path = path
        self.size = size
        self.copies = list(copies)
        self._fd: int | None = None
        self._retired: list[int] = []  # descriptors given up on, closed with the landing
        self._direct = False
        if path is not None:
            direct = DIRECT_IO and size >= ALIGN and _covers(self.copies, size)
            self._fd, self._direct = _open(path, direct)
        self._lock = threading.Lock()

    @property
    def direct(self) -> bool:
        """Whether the file is being written with O_DIRECT (past the page cache)."""
        return self._direct

    def write(self, offset: int, buffer: memoryview, count: int) -> None:
        """Write the chunk to the file and the copies. A full or read-only disk is a
        LocalIOError naming the file written: the fault is here, not at the source."""
        if self._fd is not None:
            try:
                self._write_file(offset, buffer, count)
            except OSError as error:
                _raise_local(error, self.path)
        for copy in self.copies:
            start, end = copy.span(self.size)
            low, high = max(start, offset), min(end, offset + count)
            if low < high:
                try:
                    _write_all(
                        copy.fd, buffer[low - offset : high - offset], copy.offset + low - start
                    )
                except OSError as error:
                    _raise_local(error, copy.path)

    def _write_file(self, offset: int, buffer: memoryview, count: int) -> None:
        assert self._fd is not None
        if self._direct:
            # The tail of the file is padded to a whole block; close() cuts the padding off.
            padded = -(-count // ALIGN) * ALIGN
            try:
                _write_all(self._fd, buffer[:padded], offset)
                return
            except OSError as error:
                if error.errno != errno.EINVAL:
                    raise
                self._give_up_direct()
        _write_all(self._fd, buffer[:count], offset)

    def _give_up_direct(self) -> None:
        """The file system took the open but not the write: go on with ordinary writes. The
        direct descriptor stays open until close(): another thread may be writing through it,
        and a closed number could meanwhile be reused for another file."""
        assert self.path is not None
        with self._lock:
            if self._direct:
                assert self._fd is not None
                self._retired.append(self._fd)
                self._fd, _ = _open(self.path, direct=False, truncate=False)
                self._direct = False

    def close(self) -> None:
        if self._fd is None:
            return
        try:
            # Direct writes pad the last block (even if ordinary writes took over later).
            os.ftruncate(self._fd, self.size)
        finally:
            for fd in [self._fd, *self._retired]:
                os.close(fd)
            self._fd, self._retired = None, []

    def __enter__(self) -> Landing:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stream_into(landing: Landing, read_into: Callable[[memoryview], int], advance: Advance) -> str:
    """Fill ``landing`` from a sequential source (``read_into`` as ``readinto``: bytes read,
    0 at the end), hashing on the way; returns the sha256.

    Each chunk is filled whole before it is written, so writes stay block-aligned however the
    source splits its reads (a socket hands back a few KiB at a time)."""
    digest = hashlib.sha256()
    buffer = chunk_buffer()
    offset = 0
    while True:
        filled = 0
        while filled < len(buffer):
            count = read_into(buffer[filled:])
            if not count:
                break
            filled += count
            advance(count)
        if filled:
            digest.update(buffer[:filled])
            landing.write(offset, buffer, filled)
            offset += filled
        if filled < len(buffer):
            return digest.hexdigest()


class Turns:
    """Lets threads take one step each in index order (0, 1, 2, ...), whatever order they arrive
    in: parts of a download land out of order, but sha256 must see them in order."""

    def __init__(self) -> None:
        self._next = 0
        self._cancelled = False
        self._changed = threading.Condition()

    @contextlib.contextmanager
    def of(self, index: int) -> Iterator[None]:
        with self._changed:
            while self._next != index and not self._cancelled:
                self._changed.wait()
            if self._cancelled:
                raise TurnsCancelled(f"step {index} was cancelled")
        yield
        with self._changed:
            self._next += 1
            self._changed.notify_all()

    def cancel(self) -> None:
        """Wake every waiter with TurnsCancelled (an earlier step failed: theirs never comes)."""
        with self._changed:
            self._cancelled = True
            self._changed.notify_all()


class TurnsCancelled(Exception):
    pass


def _covers(copies: Sequence[Copy], size: int) -> bool:
    """Whether the copies between them receive every byte (so nothing rereads the file)."""
    position = 0
    for start, end in sorted(copy.span(size) for copy in copies):
        if start > position:
            return False
        position = max(position, end)
    return position >= size


def _open(path: Path, direct: bool, truncate: bool = True) -> tuple[int, bool]:
    """A descriptor for writing ``path``, and whether it is direct: O_DIRECT when asked for
    and the file system takes it, else ordinary writes."""
    flags = os.O_WRONLY | os.O_CREAT | O_BINARY | (os.O_TRUNC if truncate else 0)
    if direct and DIRECT_IO:
        try:
            return os.open(path, flags | getattr(os, "O_DIRECT", 0), 0o644), True
        except OSError as error:
            if error.errno != errno.EINVAL:
                raise
    return os.open(path, flags, 0o644), False


def _raise_local(error: OSError, path: Path | None) -> NoReturn:
    fault = local_fault(error, path)
    if fault is None:
        raise error
    raise fault from error


def _write_all(fd: int, data: memoryview, offset: int) -> None:
    while data:
        written = _pwrite(fd, data, offset)
        data, offset = data[written:], offset + written


_seek_lock = threading.Lock()


def _pwrite(fd: int, data: memoryview, offset: int) -> int:
    """``os.pwrite``; where there is none (Windows), a seek and a write, one at a time."""
    if hasattr(os, "pwrite"):
        return os.pwrite(fd, data, offset)
    with _seek_lock:
        os.lseek(fd, offset, os.SEEK_SET)
        return os.write(fd, data)
