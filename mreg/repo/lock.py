"""One mreg command at a time changes a repository's cache and work tree.

``gc --force`` deleting files that a running ``add`` has just moved into the cache, or two
``fetch``es renaming the same file, are the races this prevents. The lock is an advisory
``flock`` on ``.mreg/lock`` (``msvcrt.locking`` of its first byte on Windows): it disappears with
the process, so a killed command leaves none.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from mreg.errors import RepositoryBusy, local_faults

WAIT_SECONDS = 30.0


class RepoLock:
    """A re-entrant (within one object) exclusive lock on a repository."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._depth = 0
        self._fd: int | None = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        if self._depth == 0:
            self._acquire()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            if self._depth == 0:
                self._release()

    def _acquire(self) -> None:
        with local_faults(self.path):  # a read-only .mreg: say so, in one line
            fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o644)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                _lock(fd)
                self._fd = fd
                return
            except (BlockingIOError, PermissionError):  # held (msvcrt says: access denied)
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise RepositoryBusy(
                        "another mreg command is changing this repository",
                        hint="wait for it to finish, then run this command again",
                    ) from None
                time.sleep(0.1)

    def _release(self) -> None:
        if self._fd is not None:
            _unlock(self._fd)
            os.close(self._fd)
            self._fd = None


# The platform's lock, imported where it is used: ``import mreg`` needs neither module.
if sys.platform == "win32":

    def _lock(fd: int) -> None:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)

    def _unlock(fd: int) -> None:
        import msvcrt

        os.lseek(fd, 0, os.SEEK_SET)
        msvcrt.locking(fd, msvcrt.LK_UNLCK, 1)

else:

    def _lock(fd: int) -> None:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _unlock(fd: int) -> None:
        import fcntl

        fcntl.flock(fd, fcntl.LOCK_UN)
