"""Checksums as the seed system's users ask for them: ``calculate_checksum(path)`` of any file or
folder, and of a registered version's data files (what ``ModelEntry.verify_integrity`` and
``ModelEntry.calculate_checksum`` read); and the sha256 check every load makes first. Digests
come from ``mreg.hashing``, the one place that computes them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import ModelFileNotFound, ModelIntegrityError
from mreg.hashing import sha256_path
from mreg.registry import kinds

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest


def calculate_checksum(path: str | Path) -> str:
    """Hex sha256 of a file's bytes; of a folder, one sha256 over its files' paths and
    digests (``mreg.hashing.sha256_tree``). ModelFileNotFound when there is nothing there."""
    if not Path(path).exists():
        raise ModelFileNotFound(f"{path}: no such file or folder")
    return sha256_path(Path(path))


def version_checksums(repo: Repo, name: str, commit: str) -> dict[str, str]:
    """``{data file: sha256 hashed now}`` of the version of ``name`` registered at ``commit``;
    a file missing from the cache maps to ``""``."""
    _, manifest = kinds.manifest_at(repo, name, commit)
    found = {}
    for entry in manifest.files:
        path = repo.cache.path(entry.path)
        found[entry.path] = calculate_checksum(path) if path.exists() else ""
    return found


def version_intact(repo: Repo, name: str, commit: str) -> bool:
    """Whether every data file of that version is in the cache with its recorded sha256."""
    _, manifest = kinds.manifest_at(repo, name, commit)
    return all(repo.cache.verify(entry) is None for entry in manifest.files)


def check_integrity(repo: Repo, manifest: Manifest, commit: str) -> None:
    """sha256 of every cached data file of ``manifest``; missing ones are fetched (and checked
    on arrival) when the model is opened."""
    for entry in manifest.files:
        if not repo.cache.path(entry.path).exists():
            continue
        problem = repo.cache.verify(entry)
        if problem is not None:
            raise ModelIntegrityError(
                f"{manifest.name} at {commit[:12]}: {entry.path} is {problem}",
                hint=f"delete .mreg/cache/{entry.path} and run `mreg fetch {manifest.name}`",
            )
