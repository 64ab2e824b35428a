"""``mreg pull``: fetch, then check out, with downloads landing in the restored files."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from mreg.repo.download import download_missing, short_of, unfetched
from mreg.repo.held import refuse_unheld_changes
from mreg.repo.restoration import CheckedOut, Restoration, restore_targets
from mreg.repo.targets import resolve_all
from mreg.storage.landing import Copy

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree


def pull(
    repo: WorkTree, specs: list[str] | None, remote: str | None, jobs: int, force: bool = False
) -> CheckedOut:
    """Fetch, then check out, the named artifacts (``NAME@REV`` rolls back as checkout does).

    Without ``force``, work in the work tree that mreg does not hold is refused before anything
    is downloaded. Restorations open before the fetch, so the tensors a model's format places
    up front land in the restored file as they download, instead of being copied out of the
    cache after.
    """
    targets = resolve_all(repo, specs)
    if not force:
        refuse_unheld_changes(repo, [(t.artifact_rel, t.manifest) for t in targets], "pull")
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
        _, failures = download_missing(repo, targets, remote, jobs, copies)
        hit = short_of(targets, {entry.path for entry, _ in failures})
        fetched = [t for t in targets if t not in hit]
        # With an artifact missing, leftovers stay: the next whole pull removes them.
        everything = not specs and not hit
        done = restore_targets(repo, fetched, force, started, everything, command="pull")
    if failures:
        raise unfetched(repo, targets, failures, repo.remote(remote).name)
    return done
