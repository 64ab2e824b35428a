"""``mreg verify``: re-hash every file the manifests reference, in the cache and on a remote."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.progress import bar
from mreg.repo.manifest import FileEntry
from mreg.repo.remote_check import Problem, check_remote
from mreg.repo.targets import resolve_all

if TYPE_CHECKING:
    from mreg.repo.targets import Target
    from mreg.repo.work_tree import WorkTree


def verify(repo: WorkTree, specs: list[str] | None, remote: str | None = None) -> list[Problem]:
    """Every missing or corrupt file, in the cache and (when named) on the remote."""
    targets = resolve_all(repo, specs)
    owners = _owners(targets)
    problems = _verify_cache(repo, owners)
    if remote:
        problems += check_remote(repo, owners, remote)
    return problems


def _owners(targets: list[Target]) -> dict[FileEntry, str]:
    owners: dict[FileEntry, str] = {}
    for target in targets:
        for entry in target.manifest.files:
            owners.setdefault(entry, target.manifest.name)
    return owners


def _verify_cache(repo: WorkTree, owners: dict[FileEntry, str]) -> list[Problem]:
    problems = []
    with bar("verify cache", sum(e.size for e in owners)) as advance:
        for entry, artifact in owners.items():
            reason = repo.cache.verify(entry)
            if reason:
                problems.append(Problem(artifact, entry.path, "cache", reason))
            advance(entry.size)
    return problems
