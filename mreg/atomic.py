"""Atomic writes: a reader sees the old file or the whole new one, never half of it.

Every temporary mreg makes is named ``.NAME.mreg-HOST-PID-RANDOM[.tmp]``: the machine and the
process that made it. A process killed mid-write (SIGKILL, a power cut) leaves its temporaries
behind; the next mreg command that writes at the same place removes those whose process no
longer runs on this machine (``remove_stale``), and never those of a live one.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import hashlib
import os
import re
import shutil
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from mreg.errors import local_faults

# os.open flag for files written with os.write: Windows translates newlines without it.
O_BINARY: int = getattr(os, "O_BINARY", 0)
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:8]
_OWNED = re.compile(r"\.mreg-([0-9a-f]{8})-(\d+)-[^/]*$")


def owned_prefix(name: str) -> str:
    """The start of a temporary's name for ``name`` that says which process made it."""
    return f".{name}.mreg-{_HOST}-{os.getpid()}-"


def remove_stale(folder: Path, names: list[str] | None = None) -> None:
    """Remove the temporaries for ``names`` (for any name when None) in ``folder`` that mreg
    processes of this machine left when they died. Files and folders; errors are ignored."""
    patterns = [f".{glob.escape(n)}.mreg-*" for n in names] if names is not None else [".*.mreg-*"]
    for pattern in patterns:
        for path in folder.glob(pattern):
            found = _OWNED.search(path.name)
            if not found or found[1] != _HOST or _alive(int(found[2])):
                continue
            with contextlib.suppress(OSError):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    path.unlink()


def _alive(pid: int) -> bool:
    """Whether process ``pid`` runs on this machine."""
    if sys.platform == "win32":  # os.kill(pid, 0) would send it CTRL_C_EVENT there
        return _alive_on_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


if sys.platform == "win32":

    def _alive_on_windows(pid: int) -> bool:
        import ctypes

        kernel32 = ctypes.windll.kernel32
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return ctypes.GetLastError() == 5  # ERROR_ACCESS_DENIED: it exists
        try:
            code = ctypes.c_ulong()
            kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
            return code.value == 259  # STILL_ACTIVE
        finally:
            kernel32.CloseHandle(handle)


def move(source: Path, target: Path) -> None:
    """Rename ``source`` (a file or folder) to ``target``, replacing a file there. Across file
    systems (EXDEV), copy it into a temporary beside ``target``, rename that, then remove
    ``source``: ``target`` still appears whole or not at all."""
    try:
        os.replace(source, target)
        return
    except OSError as error:
        if error.errno != errno.EXDEV:
            raise
    temporary = target.parent / f"{owned_prefix(target.name)}{uuid.uuid4().hex[:8]}.tmp"
    try:
        try:
            _copy(source, temporary)
        except OSError as error:  # name the target's disk (that is full), not the source
            raise OSError(error.errno, error.strerror, str(target)) from error
        os.replace(temporary, target)
    except BaseException:
        if temporary.is_dir():
            shutil.rmtree(temporary, ignore_errors=True)
        else:
            temporary.unlink(missing_ok=True)
        raise
    if source.is_dir():
        shutil.rmtree(source, ignore_errors=True)
    else:
        source.unlink(missing_ok=True)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copyfile(source, target)


class PendingFile:
    """A temporary file beside ``path`` (created empty) that ``commit`` renames over ``path``
    and ``discard`` removes; for writers that fill it in several steps. Making one removes the
    temporaries for ``path`` that dead processes left.

    The file gets ``mode`` less the umask, as any file the user writes (0644 typically), not
    mkstemp's 0600: restored models and remote copies are read by others too.
    """

    def __init__(self, path: Path, mode: int = 0o666) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(path.parent, [path.name])
        while True:
            name = path.parent / f"{owned_prefix(path.name)}{uuid.uuid4().hex[:12]}.tmp"
            try:
                os.close(os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode))
                break
            except FileExistsError:
                continue
        self.path = path
        self.temporary = name

    def commit(self) -> None:
        os.replace(self.temporary, self.path)

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temporary)


@contextlib.contextmanager
def atomic_output(path: Path, durable: bool = True, mode: int = 0o666) -> Iterator[BinaryIO]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` in one rename.

    ``durable`` flushes the bytes to disk before the rename. Files that can be rebuilt (restored
    artifacts) skip it: an fsync of a 1 GiB file costs about 0.4 s here, git does not fsync work
    tree files either, and a file cut short by a power loss differs in size from what the state
    remembers, so ``mreg status`` reports it and ``mreg checkout`` rewrites it. ``mode``: see
    ``PendingFile`` (0o600 for a file only its owner may read).
    """
    with local_faults(path):
        pending = PendingFile(path, mode)
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


def atomic_write_bytes(path: Path, data: bytes, mode: int = 0o666) -> None:
    """Write ``data`` to ``path`` atomically (``mode`` less the umask)."""
    with atomic_output(path, mode=mode) as handle:
        handle.write(data)


def atomic_write_text(path: Path, text: str, mode: int = 0o666) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (``mode`` less the umask)."""
    atomic_write_bytes(path, text.encode("utf-8"), mode)
