"""A remote's copies of data files checked: each downloaded, hashed as it streams and written
nowhere (what ``mreg verify --remote`` and ``mreg push --repair`` share)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import RemoteError
from mreg.progress import Advance
from mreg.repo.manifest import FileEntry
from mreg.storage.landing import Landing
from mreg.storage.transfer import run_parallel

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree


@dataclass(frozen=True)
class Problem:
    artifact: str
    path: str
    where: str
    reason: str

    def __str__(self) -> str:
        return f"{self.artifact}: {self.path}: {self.reason} ({self.where})"


def corrupt_on_remote(repo: WorkTree, entries: list[FileEntry], remote: str | None) -> set[str]:
    """Paths of ``entries`` whose copy on the remote is missing or does not hash to the
    recorded sha256 (every copy is downloaded and hashed, written nowhere)."""
    name = repo.remote(remote).name
    return {problem.path for problem in check_remote(repo, dict.fromkeys(entries, ""), name)}


def check_remote(repo: WorkTree, owners: dict[FileEntry, str], remote: str) -> list[Problem]:
    """Every file of ``owners`` (entry -> its artifact's name) missing from the remote or
    corrupt there."""
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
