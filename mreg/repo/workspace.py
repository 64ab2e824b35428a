"""The artifacts' files in the work tree: their digests (from the state's fingerprints, hashed
only when changed), and whether they hold what their manifest records."""

from __future__ import annotations

import hashlib
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.repo.state import State


def workspace_digest(
    state: State, artifact_rel: str, companions: tuple[str, ...] = ()
) -> str | None:
    """sha256 of the artifact in the work tree; with companion files that exist, one digest
    over the artifact and them (a restored self-contained file has none: its own sha256)."""
    digest = state.file_sha256(artifact_rel)
    folder = PurePosixPath(artifact_rel).parent
    present = [(folder / c).as_posix() for c in companions if (state.root / folder / c).is_file()]
    if digest is None or not present:
        return digest
    lines = [digest] + [f"{c}\0{state.file_sha256(c)}" for c in present]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def workspace_in_sync(state: State, artifact_rel: str, manifest: Manifest) -> bool:
    """Whether the work tree holds the artifact's recorded version (as added, or as mreg
    restored it)."""
    digest = workspace_digest(state, artifact_rel, manifest.source.companions)
    if digest is None:
        return False
    return digest in (
        manifest.source.sha256,
        state.restored_sha256(artifact_rel, manifest.content_key()),
    )
