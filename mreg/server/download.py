"""What a download hands out: one version of an artifact rebuilt in its original format outside
the work tree (a model folder packed as one tar stream), with its sha256."""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mreg.hashing import sha256_file

if TYPE_CHECKING:
    from mreg.repo import Repo


def build(repo: Repo, spec: str, folder: Path) -> tuple[Path, str, str]:
    """``(path, file name, sha256)`` of the artifact ``spec`` (``NAME``, ``NAME@REV``) rebuilt
    under ``folder`` from the cache (what it lacks is fetched from the default remote first)."""
    from mreg.repo.rebuild import write_copy

    target = repo.target(spec)
    if repo.cache.missing(target.manifest.files):
        repo.fetch([spec])
    name = PurePosixPath(target.artifact_rel).name
    built = folder / name
    digest = write_copy(repo, target.manifest, built)
    if not built.is_dir():
        return built, name, digest
    packed = _tar(built, folder / f"{name}.tar")
    return packed, packed.name, sha256_file(packed)


def _tar(folder: Path, target: Path) -> Path:
    with tarfile.open(target, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.add(path, arcname=str(path.relative_to(folder.parent)), recursive=False)
    return target
