"""The digest of a new version's source, taken beside its conversion: hashed on a thread
while it converts, or taken from what an engine's tasks hashed, and with what a converter
skipped left out."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mreg import converters
from mreg.hashing import path_size, sha256_listing, sha256_tree, tree_digest
from mreg.repo import manifest as manifests

if TYPE_CHECKING:
    from mreg.repo.add_options import Engine
    from mreg.repo.work_tree import WorkTree

# A folder's files as (relative path, size, sha256), as hashing.sha256_listing gives them.
Listing = list[tuple[str, int, str]]


@dataclass(frozen=True)
class WorkTreeSource:
    """The path an overwrite tracks, as the work tree has it now, and the name it gets."""

    path: Path
    relpath: str
    name: str
    companions: tuple[str, ...]
    size: int
    # Its digest when hashed already (the previous version's size and format match), else None.
    sha256: str | None

    @property
    def manifest_rel(self) -> str:
        return self.relpath + manifests.SUFFIX


def without_skipped(
    source: WorkTreeSource, sha: str, files: Listing, skipped: list[str]
) -> tuple[str, int, Listing]:
    """The digest, size and files of a folder without the records a converter skipped: that
    is what checkout gives back, and status shows the work tree (which still holds them) as
    changed. A file, or a folder with nothing skipped, as it is."""
    if not skipped or not source.path.is_dir():
        return sha, source.size, files
    left_out = set(skipped)
    kept = [f for f in files if f[0] not in left_out]
    # A listed folder's digest comes from its listing; an opaque one is hashed again.
    sha = tree_digest(kept) if files else sha256_tree(source.path, leave_out=left_out)
    return sha, path_size(source.path, leave_out=left_out), kept


def hash_later(
    repo: WorkTree,
    converter: converters.Converter,
    source: WorkTreeSource,
    engine: Engine | None,
    hasher: ThreadPoolExecutor,
) -> Callable[[], tuple[str, Listing]]:
    """Start hashing the source on ``hasher`` while it converts; a function to call after the
    conversion, that waits for its digest and its files' listing. sha256 releases the GIL: for
    1 GiB, 1 s of the 3.3 s an add took when one waited for the other. A folder's files are
    listed (path, size, sha256) for `mreg diff` in the same pass that hashes it; opaque folders
    list them in their restore info already, and a source hashed already is not hashed again.
    An engine's tasks hash the sources they read: this process does not read them."""
    listed = source.path.is_dir() and converter.format != converters.OPAQUE_DIR
    if engine is not None and not source.companions:
        return lambda: _engine_digest(repo, source, engine.source_listing(source.path), listed)
    if listed:
        listing = hasher.submit(sha256_listing, source.path)
        return lambda: (_folder_digest(repo, source, listing.result()), listing.result())
    if source.sha256 is not None:
        known = source.sha256
        return lambda: (known, [])
    hashing = hasher.submit(repo.workspace_digest, source.relpath, source.companions)
    return lambda: (hashing.result() or "", [])


def _engine_digest(
    repo: WorkTree, source: WorkTreeSource, files: Listing, listed: bool
) -> tuple[str, Listing]:
    """The digest and listing from what an engine's tasks hashed (a file: its one entry)."""
    if listed:
        return _folder_digest(repo, source, files), files
    if source.sha256 is not None:
        return source.sha256, []
    repo.state.remember_sha256(source.relpath, files[0][2])
    return files[0][2], []


def _folder_digest(repo: WorkTree, source: WorkTreeSource, files: Listing) -> str:
    """The folder's digest: known already, else from its listing (and remembered)."""
    if source.sha256 is not None:
        return source.sha256
    sha = tree_digest(files)
    repo.state.remember_sha256(source.relpath, sha)
    return sha
