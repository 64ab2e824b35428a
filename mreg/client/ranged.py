"""A large file fetched by parallel ranged GETs into one file, its sha256 checked before it is
handed over, a broken-off download resumed by Range.

The file is cut into blocks of ``BLOCK`` bytes that ``STREAMS`` threads fetch in order, each
written in place (``pwrite``) into ``.NAME.SHA.partial`` beside the target. Because blocks are
taken in order, the finished part of the file grows from its start, and a hashing thread
follows right behind the writers: when the last block lands, the digest is nearly done, with no
part files to join and no second pass over the bytes. Finished blocks are listed in
``.NAME.SHA.partial.done``; a re-run fetches only the others (the final sha256 still checks all
of it).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from mreg.client.answers import checked
from mreg.errors import IntegrityError, RemoteError

if TYPE_CHECKING:
    import httpx

STREAMS = 4
BLOCK = 32 << 20
READ = 8 << 20  # bytes the hashing thread reads at a time


def fetch(http: httpx.Client, url: str, target: Path, size: int, sha256: str) -> Path:
    """The ``size`` bytes at ``url`` as ``target``, once their sha256 is ``sha256``."""
    import httpx

    partial = target.parent / f".{target.name}.{sha256[:16]}.partial"
    ledger = partial.with_name(f"{partial.name}.done")
    blocks = [(start, min(start + BLOCK, size)) for start in range(0, size, BLOCK)]
    done = _finished(partial, ledger, size)
    fd = os.open(partial, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.ftruncate(fd, size)
        hasher = _InOrderHash(fd, blocks, done)
        with open(ledger, "a") as log, ThreadPoolExecutor(STREAMS) as pool:
            mark = _marker(log, hasher)
            todo = [(i, block) for i, block in enumerate(blocks) if i not in done]
            try:
                list(pool.map(lambda job: _block(http, url, fd, job[0], job[1], mark), todo))
            except httpx.TransportError as error:
                hasher.stop()
                raise RemoteError(
                    f"the download of {target.name} stopped: {error}",
                    hint="run it again: it resumes where it stopped",
                ) from None
            except BaseException:
                hasher.stop()
                raise
        digest = hasher.hexdigest()
    finally:
        os.close(fd)
    if digest != sha256:
        partial.unlink(missing_ok=True)
        ledger.unlink(missing_ok=True)
        raise IntegrityError(f"{target.name}: the download does not match its sha256")
    os.replace(partial, target)
    ledger.unlink(missing_ok=True)
    return target


def _finished(partial: Path, ledger: Path, size: int) -> set[int]:
    """The blocks an earlier run finished, if its partial file is there with the right size."""
    if not (partial.is_file() and partial.stat().st_size == size and ledger.is_file()):
        ledger.unlink(missing_ok=True)
        return set()
    return {int(line) for line in ledger.read_text().split() if line.isdigit()}


def _marker(log: TextIO, hasher: _InOrderHash) -> Callable[[int], None]:
    """What a thread calls when its block is written: the block listed as done, then hashed."""
    lock = threading.Lock()

    def mark(index: int) -> None:
        with lock:
            log.write(f"{index}\n")
            log.flush()
        hasher.finished(index)

    return mark


def _block(
    http: httpx.Client,
    url: str,
    fd: int,
    index: int,
    bounds: tuple[int, int],
    mark: Callable[[int], None],
) -> None:
    start, end = bounds
    with http.stream("GET", url, headers={"Range": f"bytes={start}-{end - 1}"}) as answer:
        checked(answer, streamed=True)
        offset = start
        for chunk in answer.iter_raw(1 << 20):
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)
    if offset != end:
        raise RemoteError(f"the server sent {offset - start:,} of {end - start:,} bytes")
    mark(index)


class _InOrderHash:
    """sha256 of the file behind ``fd``, computed on a thread of its own block by block in
    order, each block as soon as it is written."""

    def __init__(self, fd: int, blocks: list[tuple[int, int]], done: set[int]) -> None:
        self._fd = fd
        self._blocks = blocks
        self._done = set(done)
        self._ready = threading.Condition()
        self._stopped = False
        self._digest = hashlib.sha256()
        self._thread = threading.Thread(target=self._run, name="mreg-download-hash", daemon=True)
        self._thread.start()

    def finished(self, index: int) -> None:
        with self._ready:
            self._done.add(index)
            self._ready.notify()

    def stop(self) -> None:
        with self._ready:
            self._stopped = True
            self._ready.notify()
        self._thread.join()

    def hexdigest(self) -> str:
        self._thread.join()
        return self._digest.hexdigest()

    def _run(self) -> None:
        for index, (start, end) in enumerate(self._blocks):
            with self._ready:
                while index not in self._done and not self._stopped:
                    self._ready.wait()
                if self._stopped:
                    return
            for offset in range(start, end, READ):
                self._digest.update(os.pread(self._fd, min(READ, end - offset), offset))
