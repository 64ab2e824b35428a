"""``mreg push``: upload the data files a remote lacks."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import MissingData
from mreg.progress import Advance
from mreg.repo.download import referenced_files
from mreg.repo.manifest import FileEntry
from mreg.repo.remote_check import corrupt_on_remote
from mreg.repo.targets import Target, live_manifests, resolve_all
from mreg.repo.versions import tagged_versions, work_tree_folders
from mreg.storage.transfer import TransferResult, run_parallel

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree


def push(
    repo: WorkTree,
    specs: list[str] | None,
    remote: str | None,
    jobs: int,
    all_refs: bool = False,
    repair: bool = False,
) -> TransferResult:
    """Upload what the remote lacks; files it already has (same path and size) never travel.

    With no ``specs``, the data of every tagged version (registered, or in a stage) goes along
    with the work tree's artifacts; ``all_refs`` widens that to every version at the tip of a
    branch or tag (what ``gc`` keeps). Of those other versions, what this cache holds is pushed
    and the rest counted in ``TransferResult.not_cached``.
    ``repair`` first hashes the remote's copies and uploads again those that are corrupt (a
    flipped bit keeps the size, so a plain push would leave it there).
    """
    targets = resolve_all(repo, specs)
    entries = referenced_files(targets)
    store = repo.store(remote, jobs=jobs)
    present = store.list_files()
    # Files the remote has already need no copy here (a Ray add writes them there directly).
    absent = [e for e in repo.cache.missing(entries) if present.get(e.path) != e.size]
    if absent:
        names = sorted({t.manifest.name for t in targets for f in t.manifest.files if f in absent})
        raise MissingData(
            f"cannot push {', '.join(names)}: {len(absent)} data file(s) are not in the cache",
            hint="run `mreg fetch` from the remote that has them, or `mreg add` the file again",
        )
    known = {e.path for e in entries}
    extra = [e for e in _other_versions(repo, targets, specs, all_refs) if e.path not in known]
    missing_extra = {e for e in repo.cache.missing(extra) if present.get(e.path) != e.size}
    not_cached = len(missing_extra)
    entries = sorted(
        [*entries, *(e for e in extra if e not in missing_extra)], key=lambda e: e.path
    )
    todo = [e for e in entries if present.get(e.path) != e.size]
    if repair:
        same_size = [e for e in entries if e not in todo]
        corrupt = corrupt_on_remote(repo, same_size, remote) if same_size else set()
        todo += [e for e in same_size if e.path in corrupt]

    def upload(entry: FileEntry, advance: Advance) -> None:
        store.upload(repo.cache.path(entry.path), entry.path, advance)

    total = sum(e.size for e in todo)
    run_parallel(todo, upload, f"push to {repo.remote(remote).name}", total, jobs)
    reused = len(entries) - len(todo)
    reused_bytes = sum(e.size for e in entries) - total
    return TransferResult(len(todo), total, not_cached, reused, reused_bytes)


def _other_versions(
    repo: WorkTree, targets: list[Target], specs: list[str] | None, all_refs: bool
) -> list[FileEntry]:
    """The files of the versions a push sends besides its targets, each once."""
    if all_refs:
        return referenced_files([Target("", m) for m in live_manifests(repo)])
    if specs:
        return []
    versions = tagged_versions(repo, work_tree_folders(targets))
    unique = {f.path: f for version in versions for f in version.files}
    return [unique[path] for path in sorted(unique)]
