"""What a download hands out: one version of an artifact rebuilt in its original format outside
the work tree (a model folder packed as one tar stream), with its sha256.

The bytes are hashed as they are written (a file by the restore itself, a folder's tar on its way
out), never read back: a 1 GiB model is written once, not written, copied and hashed again.
"""

from __future__ import annotations

import tarfile
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, BinaryIO, cast

from mreg.hashing import HashingWriter

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest


def build(repo: Repo, spec: str, manifest: Manifest, target: Path) -> str:
    """Rebuild the artifact ``spec`` (whose manifest is ``manifest``) from the cache as the file
    ``target``, a folder as a tar of its files under the folder's name; returns the sha256 of
    ``target``. What the cache lacks is fetched from the default remote first."""
    from mreg.repo.rebuild import write_copy

    if repo.cache.missing(manifest.files):
        repo.fetch([spec])
    built = target.with_name(PurePosixPath(manifest.path).name)
    digest = write_copy(repo, manifest, built)
    if not built.is_dir():
        built.rename(target)
        return digest
    return _tar(built, target)


def _tar(folder: Path, target: Path) -> str:
    """``folder``'s files as the tar ``target``, under the folder's name and sorted (the same
    folder gives the same bytes, and unpacking makes one folder); returns its sha256."""
    with open(target, "wb") as raw:
        hashing = HashingWriter(raw)
        with tarfile.open(fileobj=cast(BinaryIO, hashing), mode="w") as archive:
            for path in sorted(folder.rglob("*")):
                archive.add(path, arcname=str(path.relative_to(folder.parent)), recursive=False)
        return hashing.hexdigest()
