"""Checksums as the seed system's users ask for them: ``calculate_checksum(path)`` of any file or
folder, and of a registered version's data files (what ``ModelEntry.verify_integrity`` and
``ModelEntry.calculate_checksum`` read). Digests come from ``mreg.hashing``, the one place that
computes them."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import ModelFileNotFound
from mreg.hashing import sha256_path
from mreg.registry import kinds

if TYPE_CHECKING:
    from mreg.repo import Repo


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
