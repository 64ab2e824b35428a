"""``mreg verify``: re-hash every file the manifests reference, in the cache and on a remote."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import RemoteError
from mreg.progress import Advance, bar
from mreg.repo.manifest import FileEntry
from mreg.storage.landing import Landing
from mreg.storage.transfer import run_parallel

if TYPE_CHECKING:
    from mreg.repo import Repo, Target


@dataclass(frozen=True)
class Problem:
    artifact: str
    path: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.artifact}: {self.path}: {self.reason} ({self.where})"


def verify(repo: Repo, specs: list[str] | None, remote: str | None = None) -> list[Problem]:
    """Every missing or corrupt file, in the cache and (when named) on the remote."""
    targets = repo.targets(specs)
    owners = _owners(targets)
    problems = _verify_cache(repo, owners)
    if remote:
        problems += _verify_remote(repo, owners, remote)
    return problems


def _owners(targets: list[Target]) -> dict[FileEntry, str]:
    owners: dict[FileEntry, str] = {}
    for target in targets:
        for entry in target.manifest.files:
            owners.setdefault(entry, target.manifest.name)
    return owners


def _verify_cache(repo: Repo, owners: dict[FileEntry, str]) -> list[Problem]:
    problems = []
    with bar("verify cache", sum(e.size for e in owners)) as advance:
        for entry, artifact in owners.items():
            reason = repo.cache.verify(entry)
            if reason:
                problems.append(Problem(artifact, entry.path, "cache", reason))
            advance(entry.size)
    return problems


def corrupt_on_remote(repo: Repo, entries: list[FileEntry], remote: str | None) -> set[str]:
    """Paths of ``entries`` whose copy on the remote is missing or does not hash to the
    recorded sha256 (every copy is downloaded and hashed, written nowhere)."""
    name = repo.remote(remote).name
    return {problem.path for problem in _verify_remote(repo, dict.fromkeys(entries, ""), name)}


def _verify_remote(repo: Repo, owners: dict[FileEntry, str], remote: str) -> list[Problem]:
    store = repo.store(remote)
    where = f"remote '{repo.remote(remote).name}'"
    present = store.list_files()
    problems = [
        Problem(artifact, e.path, where, "missing from remote")
        for e, artifact in owners.items()
        if e.path not in present
    ]
    lock = threading.Lock()

    def check(entry: FileEntry, advance: Advance) -> None:
        try:
            # Hashed as it streams, written nowhere.
            digest = store.download(entry.path, Landing(None, entry.size), advance)
            corrupt = digest != entry.sha256
        except RemoteError as error:
            corrupt, reason = True, str(error)
        else:
            reason = "corrupt on remote (sha256 mismatch)"
        if corrupt:
            with lock:
                problems.append(Problem(owners[entry], entry.path, where, reason))

    todo = [e for e in owners if e.path in present]
    run_parallel(todo, check, f"verify {where}", sum(e.size for e in todo), jobs=8)
    return problems
