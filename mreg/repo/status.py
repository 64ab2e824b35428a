"""``mreg status``: where each artifact stands in the work tree, the cache and a remote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mreg.repo import Repo

IN_SYNC = "in sync"
CHANGED = "changed in workspace"
MISSING_WORKSPACE = "missing from workspace"
MISSING_CACHE = "missing from cache"
NOT_PUSHED = "not pushed"


@dataclass(frozen=True)
class ArtifactStatus:
    name: str
    path: str
    kind: str
    states: tuple[str, ...]

    @property
    def in_sync(self) -> bool:
        return self.states == (IN_SYNC,)


def status(repo: Repo, remote: str | None = None) -> list[ArtifactStatus]:
    """One status per artifact in the work tree; the remote is asked only when named."""
    remote_files = repo.store(remote).list_files() if remote else None
    results = []
    for target in repo.targets(None):
        manifest = target.manifest
        states = []
        if repo.state.file_sha256(target.artifact_rel) is None:
            states.append(MISSING_WORKSPACE)
        elif not repo.workspace_in_sync(target.artifact_rel, manifest):
            states.append(CHANGED)
        if repo.cache.missing(manifest.files):
            states.append(MISSING_CACHE)
        if remote_files is not None and any(
            remote_files.get(f.path) != f.size for f in manifest.files
        ):
            states.append(NOT_PUSHED)
        results.append(
            ArtifactStatus(
                manifest.name, target.artifact_rel, manifest.kind, tuple(states or [IN_SYNC])
            )
        )
    return results
