"""Models and datasets share ``NAME@vX.Y.Z`` tags (GTO's convention): the ``kind`` a manifest
records says which one a version is. A model's manifest at a commit, and the errors for asking
about one kind as the other."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import RegistryError

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest

MODEL = "model"
DATASET = "dataset"


def not_a_model(name: str, kind: str) -> RegistryError:
    """The error for asking the registry about an artifact that is not a model."""
    return wrong_kind(name, kind, MODEL)


def wrong_kind(name: str, kind: str, wanted: str) -> RegistryError:
    """The error for asking about ``name`` (a ``kind``) as a registered ``wanted``."""
    listing = "`mreg models`" if wanted == MODEL else "`mreg search kind:dataset`"
    return RegistryError(
        f"'{name}' is a {kind}, not a registered {wanted}",
        hint=f"describe it with `mreg show {name}`; the registered {wanted}s: {listing}",
    )


def manifest_at(repo: Repo, name: str, commit: str) -> tuple[str, Manifest]:
    """``(manifest path, manifest)`` of ``name`` in ``commit``; RegistryError if it has none, or
    if it is not a model's."""
    found = repo.lookup(name, commit)
    if found is None:
        raise RegistryError(f"'{name}' has no manifest at {commit[:12]}")
    if found[1].kind != MODEL:
        raise not_a_model(name, found[1].kind)
    return found
