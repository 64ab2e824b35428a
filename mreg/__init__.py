"""mreg: version machine-learning models and datasets in git, with the bytes in Lance.

Python API::

    import mreg
    repo = mreg.Repo(".")
    repo.add("model.safetensors")
    ds = mreg.open("my-table", rev="my-table@v1.0.0")
    state_dict = mreg.load_state_dict("my-model")
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import (
    IntegrityError,
    ModelIntegrityError,
    MregError,
    NotARepository,
    RemoteError,
    UnsupportedFormat,
)
from mreg.lazy import lazy_attributes

if TYPE_CHECKING:
    import lance

    from mreg.registry import (
        CompressionType,
        DataManager,
        ModelEntry,
        ModelFormat,
        ModelRegistry,
        ModelType,
    )
    from mreg.repo import Repo

__version__ = "0.1.0"

# The registry and the repository load on first use (PEP 562), so that ``import mreg.errors``
# or starting the CLI does not pay for them.
_LAZY = {
    "Client": "mreg.client",
    "CompressionType": "mreg.registry",
    "DataManager": "mreg.registry",
    "ModelEntry": "mreg.registry",
    "ModelFormat": "mreg.registry",
    "ModelRegistry": "mreg.registry",
    "ModelType": "mreg.registry",
    "Repo": "mreg.repo",
}


__getattr__ = lazy_attributes(__name__, _LAZY)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


def open(
    name: str, rev: str | None = None, repo: str | Path = ".", remote: str | None = None
) -> lance.LanceDataset:
    """The Lance dataset of exactly the version of ``name`` the manifest (at ``rev``) records:
    from the cache, or with ``remote="NAME"`` read in place from that remote (nothing is
    downloaded ahead; MissingData when the remote lacks a data file of that version)."""
    from mreg.repo import Repo

    return Repo(repo).open(name, rev, remote)


def load_state_dict(name: str, rev: str | None = None, repo: str | Path = ".") -> dict[str, Any]:
    """The tensors of model ``name`` (at ``rev``) as a dict of torch tensors."""
    from mreg.repo import Repo

    return Repo(repo).load_state_dict(name, rev)


__all__ = [
    "Client",
    "CompressionType",
    "DataManager",
    "IntegrityError",
    "ModelEntry",
    "ModelFormat",
    "ModelIntegrityError",
    "ModelRegistry",
    "ModelType",
    "MregError",
    "NotARepository",
    "RemoteError",
    "Repo",
    "UnsupportedFormat",
    "__version__",
    "load_state_dict",
    "open",
]
