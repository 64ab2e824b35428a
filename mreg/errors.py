"""One exception hierarchy. Every message is a sentence a user can act on.

The CLI prints ``str(error)`` on one line to stderr (plus the ``hint`` when there is one) and
exits non-zero; tracebacks only appear with ``--verbose``.
"""

from __future__ import annotations


def one_line(error: BaseException, limit: int = 200) -> str:
    """The first line of a foreign library's error, to quote inside an mreg message."""
    text = str(error).strip()
    first = text.splitlines()[0] if text else type(error).__name__
    return first[:limit]


class MregError(Exception):
    """Base class of every error mreg raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


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


class GitError(MregError):
    """A git operation (revision, tag, log) failed."""


class VerificationFailed(MregError):
    """``mreg verify`` found missing or corrupt files."""


class RegistryError(UsageError, ValueError):
    """An unknown model, version or stage; a duplicate or invalid version; a stage not allowed."""


class ModelIntegrityError(IntegrityError):
    """The bytes of a registered model do not match the sha256 its manifest records."""


class ModelClassError(UsageError, ImportError):
    """The recorded model class does not import, or cannot be built from its arguments."""


class ModelFileNotFound(UsageError, FileNotFoundError):
    """The path given to ``register_model`` does not exist."""
