"""``mreg status``: where each artifact stands in the work tree, the cache and a remote."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.repo.manifest import SUFFIX, FileEntry
from mreg.repo.targets import resolve_all
from mreg.repo.versions import tagged_versions, work_tree_folders

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mreg.repo.targets import Target
    from mreg.repo.work_tree import WorkTree

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
    tag: str = ""  # for a tagged version that is not the work tree's: the tag naming it

    @property
    def in_sync(self) -> bool:
        return self.states == (IN_SYNC,)


def status(repo: WorkTree, remote: str | None = None) -> list[ArtifactStatus]:
    """One status per artifact in the work tree; with ``remote``, also one per tagged version
    (registered, or in a stage) whose data the remote lacks, named by its tag."""
    remote_files = repo.store(remote).list_files() if remote else None
    targets = resolve_all(repo, None)
    results = []
    for target in targets:
        manifest = target.manifest
        states = []
        if repo.state.file_sha256(target.artifact_rel) is None:
            states.append(MISSING_WORKSPACE)
        elif not repo.workspace_in_sync(target.artifact_rel, manifest):
            states.append(CHANGED)
        if repo.cache.missing(manifest.files):
            states.append(MISSING_CACHE)
        if remote_files is not None and not _on_remote(manifest.files, remote_files):
            states.append(NOT_PUSHED)
        results.append(
            ArtifactStatus(
                manifest.name, target.artifact_rel, manifest.kind, tuple(states or [IN_SYNC])
            )
        )
    if remote_files is not None:
        results.extend(_unpushed_versions(repo, targets, remote_files))
    return results


def _unpushed_versions(
    repo: WorkTree, targets: list[Target], remote_files: dict[str, int]
) -> list[ArtifactStatus]:
    found = []
    for version in tagged_versions(repo, work_tree_folders(targets)):
        if _on_remote(version.files, remote_files):
            continue
        states = [NOT_PUSHED]
        if repo.cache.missing(version.files):
            states.append(MISSING_CACHE)
        artifact_rel = version.manifest_rel.removesuffix(SUFFIX)
        found.append(
            ArtifactStatus(version.name, artifact_rel, version.kind, tuple(states), version.tag)
        )
    return found


def _on_remote(files: Iterable[FileEntry], remote_files: dict[str, int]) -> bool:
    return all(remote_files.get(f.path) == f.size for f in files)
