"""``mreg fetch`` and ``mreg pull``: download what the cache lacks, checked by sha256."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mreg.progress import Advance
from mreg.repo.manifest import FileEntry
from mreg.repo.push import referenced_files
from mreg.storage.landing import Copy, Landing
from mreg.storage.transfer import TransferResult, run_parallel

if TYPE_CHECKING:
    from mreg.repo import Repo, Target


def fetch(repo: Repo, specs: list[str] | None, remote: str | None, jobs: int) -> TransferResult:
    return fetch_manifests(repo, repo.targets(specs), remote, jobs)


def fetch_manifests(
    repo: Repo,
    targets: list[Target],
    remote: str | None,
    jobs: int,
    copies: Mapping[str, Sequence[Copy]] | None = None,
) -> TransferResult:
    """Download every missing file of ``targets``; each enters the cache only if its hash fits.

    ``copies``: by cache path, where else a file's bytes go as they arrive (the work-tree files
    a pull is restoring); each copy is marked ``landed`` once its file is checked and cached.
    """
    todo = repo.cache.missing(referenced_files(targets))
    if not todo:
        return TransferResult(0, 0)
    store = repo.store(remote, jobs=jobs)
    copies = copies or {}

    def download(entry: FileEntry, advance: Advance) -> None:
        temporary = repo.cache.temp_file()
        try:
            with Landing(temporary, entry.size, copies.get(entry.path, ())) as landing:
                digest = store.download(entry.path, landing, advance)
            repo.cache.receive(entry, temporary, digest)
        finally:
            temporary.unlink(missing_ok=True)
        for copy in copies.get(entry.path, ()):
            copy.landed = True

    total = sum(e.size for e in todo)
    with repo.state.batch():
        run_parallel(todo, download, f"fetch from {repo.remote(remote).name}", total, jobs)
    return TransferResult(len(todo), total)


def pull(repo: Repo, specs: list[str] | None, remote: str | None, jobs: int) -> list[Target]:
    """Fetch, then check out, the named artifacts (``NAME@REV`` rolls back as checkout does).

    Restorations open before the fetch, so the tensors a model's format places up front land
    in the restored file as they download, instead of being copied out of the cache after.
    """
    from mreg.atomic import sweep_leftovers
    from mreg.repo.checkout import Restoration, checkout_targets, written_paths

    targets = repo.targets(specs)
    sweep_leftovers(written_paths(repo, targets))
    with contextlib.ExitStack() as stack:
        started = {
            target.manifest_rel: stack.enter_context(
                Restoration(repo, target.manifest_rel, target.manifest)
            )
            for target in targets
            if not repo.workspace_in_sync(target.artifact_rel, target.manifest)
        }
        copies: dict[str, list[Copy]] = {}
        for restoration in started.values():
            for path, more in restoration.copies().items():
                copies.setdefault(path, []).extend(more)
        fetch_manifests(repo, targets, remote, jobs, copies)
        checkout_targets(repo, targets, started=started)
    return targets
