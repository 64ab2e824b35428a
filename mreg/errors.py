"""One exception hierarchy. Every message is a sentence a user can act on.

The CLI prints ``str(error)`` (the message, then the ``hint`` when there is one) on one line to
stderr and exits non-zero; tracebacks only appear with ``--verbose``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
from collections.abc import Iterator
from pathlib import Path


def one_line(error: BaseException, limit: int = 200) -> str:
    """The first line of a foreign library's error, to quote inside an mreg message."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:limit]


class MregError(Exception):
    """Base class of every error mreg raises on purpose.

    ``str(error)`` is the message and, when there is one, ``(hint: ...)``: what the CLI prints,
    so Python users see the same next step. ``message`` alone is for wrapping in another error.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} (hint: {self.hint})" if self.hint else self.message


class NotARepository(MregError):
    """The path is not inside a git work tree, or mreg was not initialised there."""


class UnsafeRepository(MregError):
    """The repository commits what mreg never takes from git (local state, cache, links)."""


class UsageError(MregError):
    """The arguments do not make sense together (bad name, path outside the repo, ...)."""


class UnsupportedFormat(MregError):
    """No converter knows the file, or the converter refuses its content."""


class CorruptInput(MregError):
    """The input file is truncated, malformed or unsafe to load."""


class ArtifactNotFound(MregError):
    """No manifest carries the requested name (at the requested revision)."""


class NameConflict(MregError):
    """Two artifacts would share one name."""


class ManifestError(MregError):
    """A manifest cannot be parsed, or points outside the repository."""


class IntegrityError(MregError, RuntimeError):
    """Bytes on disk or on a remote do not match the sha256 the manifest records."""


class WorkTreeChanged(MregError):
    """A command would overwrite or delete work-tree bytes that mreg does not hold."""


class MissingData(MregError):
    """Bytes a manifest references are neither in the cache nor fetched yet."""


class RemoteError(MregError):
    """A remote is not configured, unreachable, or refused the request."""


class RemoteFileMissing(RemoteError):
    """A file a manifest references is not on the remote (the bucket or folder is there)."""


class GitError(MregError):
    """A git operation (revision, tag, log) failed."""


class VerificationFailed(MregError):
    """``mreg verify`` found missing or corrupt files."""


class RegistryError(UsageError, ValueError):
    """An unknown model, version or stage; a duplicate or invalid version; a stage not allowed."""


class NotRegistered(RegistryError, LookupError):
    """No model, version or stage of that name is registered (a server answers 404)."""


class AlreadyRegistered(RegistryError):
    """The version asked for is registered already (a server answers 409)."""


class ModelIntegrityError(IntegrityError):
    """The bytes of a registered model do not match the sha256 its manifest records."""


class ModelClassError(UsageError, ImportError):
    """The recorded model class does not import, or cannot be built from its arguments."""


class ModelFileNotFound(UsageError, FileNotFoundError):
    """The path given to ``register_model`` does not exist."""


class LocalIOError(MregError):
    """A local file or folder cannot be written or read: a read-only file system, no
    permission, an I/O error. The message names the path."""


class StorageFull(LocalIOError):
    """The device being written has no space left (or the user's quota is used up)."""


# The faults of local storage, by errno. Any other OSError (no such file, a bad descriptor) is
# a bug or a race to see with its traceback, never hidden behind a sentence.
_FULL = {errno.ENOSPC, errno.EDQUOT}
_FAULTS = {  # what went wrong, with {} for the path
    errno.ENOSPC: "no space left on device writing {}",
    errno.EDQUOT: "disk quota exceeded writing {}",
    errno.EROFS: "read-only file system: cannot write {}",
    errno.EACCES: "permission denied: {}",
    errno.EPERM: "operation not permitted: {}",
    errno.EIO: "input/output error on {}",
}
_HINTS = {
    errno.ENOSPC: "free space on that device (`mreg gc --force` deletes cache files that no "
    "version uses), then run the command again",
    errno.EROFS: "mount it read-write (or work in a copy that can be written), then run the "
    "command again",
    errno.EACCES: "check the owner and permissions of that path",
    errno.EIO: "the device reported an error: check it (and the system log), then run the "
    "command again",
}
_HINTS[errno.EDQUOT] = _HINTS[errno.ENOSPC]
_HINTS[errno.EPERM] = _HINTS[errno.EACCES]
# Lance (Rust) raises a plain OSError whose text ends with "(os error 28)" and has no errno.
_RUST_ERRNO = re.compile(r"\(os error (\d+)\)")


def local_fault(error: OSError, path: str | Path | None = None) -> LocalIOError | None:
    """The LocalIOError (StorageFull when the device is full) for an OSError that is a fault of
    local storage, naming the file the error names, else ``path``; None for any other OSError."""
    code = error.errno
    if code is None:
        found = _RUST_ERRNO.search(str(error))
        code = int(found.group(1)) if found else None
    if code not in _FAULTS:
        return None
    where = error.filename if error.filename is not None else path
    message = _FAULTS[code].format(_shown(where) if where else "a local file")
    kind = StorageFull if code in _FULL else LocalIOError
    return kind(message, hint=_HINTS[code])


@contextlib.contextmanager
def local_faults(path: str | Path) -> Iterator[None]:
    """Turn a fault of local storage raised inside into a LocalIOError naming ``path`` (or the
    file the error itself names); other errors pass unchanged."""
    try:
        yield
    except OSError as error:
        fault = local_fault(error, path)
        if fault is None:
            raise
        raise fault from error


def _shown(path: str | Path | bytes | int) -> str:
    """``path`` relative to the current directory when it lies below it."""
    if not isinstance(path, str | Path):
        return str(path)
    text = str(path)
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(text)
        if not relative.startswith(".."):
            return relative
    return text
