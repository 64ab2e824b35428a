"""``mreg push``: upload the data files a remote lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import MissingData
from mreg.progress import Advance
from mreg.repo.manifest import FileEntry
from mreg.storage.transfer import TransferResult, run_parallel

if TYPE_CHECKING:
    from mreg.repo import Repo, Target


def referenced_files(targets: list[Target]) -> list[FileEntry]:
    """Every file the targets' manifests reference, each once."""
    unique = {f.path: f for target in targets for f in target.manifest.files}
    return [unique[path] for path in sorted(unique)]


def push(
    repo: Repo,
    specs: list[str] | None,
    remote: str | None,
    jobs: int,
    all_refs: bool = False,
    repair: bool = False,
) -> TransferResult:
    """Upload what the remote lacks; files it already has (same path and size) never travel.

    ``all_refs`` adds every version at the tip of a branch or tag (what ``gc`` keeps) and
    pushes what of them this cache holds, counting the rest in ``TransferResult.not_cached``.
    ``repair`` first hashes the remote's copies and uploads again those that are corrupt (a
    flipped bit keeps the size, so a plain push would leave it there).
    """
    targets = repo.targets(specs)
    entries = referenced_files(targets)
    absent = repo.cache.missing(entries)
    not_cached = 0
    if all_refs:
        from mreg.repo import Target
        from mreg.repo.gc import live_manifests

        others = referenced_files([Target("", m) for m in live_manifests(repo)])
        known = {e.path for e in entries}
        extra = [e for e in others if e.path not in known]
        missing_extra = repo.cache.missing(extra)
        not_cached = len(missing_extra)
        entries = sorted(
            [*entries, *(e for e in extra if e not in missing_extra)], key=lambda e: e.path
        )
    if absent:
        names = sorted({t.manifest.name for t in targets for f in t.manifest.files if f in absent})
        raise MissingData(
            f"cannot push {', '.join(names)}: {len(absent)} data file(s) are not in the cache",
            hint="run `mreg fetch` from the remote that has them, or `mreg add` the file again",
        )
    store = repo.store(remote, jobs=jobs)
    present = store.list_files()
    todo = [e for e in entries if present.get(e.path) != e.size]
    if repair:
        from mreg.repo.verify import corrupt_on_remote

        same_size = [e for e in entries if e not in todo]
        corrupt = corrupt_on_remote(repo, same_size, remote) if same_size else set()
        todo += [e for e in same_size if e.path in corrupt]

    def upload(entry: FileEntry, advance: Advance) -> None:
        store.upload(repo.cache.path(entry.path), entry.path, advance)

    total = sum(e.size for e in todo)
    run_parallel(todo, upload, f"push to {repo.remote(remote).name}", total, jobs)
    return TransferResult(len(todo), total, not_cached)
