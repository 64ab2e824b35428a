"""``mreg gc``: find (and with ``force`` delete) data no manifest on any branch or tag uses."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest


@dataclass(frozen=True)
class GcReport:
    where: str
    unused: tuple[str, ...]
    bytes: int
    deleted: bool


def live_manifests(repo: Repo, all_commits: bool = False) -> list[Manifest]:
    """Manifests in the work tree and at the tip of every branch and tag (or every commit)."""
    revisions = repo.git.all_commits() if all_commits else repo.git.ref_tips()
    found = list(repo.manifests().values())
    seen_blobs: set[str] = set()
    for rev in revisions:
        for blob, manifest in repo.manifests_by_blob(rev, skip=seen_blobs):
            seen_blobs.add(blob)
            found.append(manifest)
    return found


def gc(repo: Repo, remote: str | None, force: bool, all_commits: bool = False) -> GcReport:
    live = live_manifests(repo, all_commits)
    referenced = {f.path for m in live for f in m.files}
    if remote:
        store = repo.store(remote)
        files = store.list_files()
        where = store.description
    else:
        files = repo.cache.all_files()
        where = "cache"
    unused = tuple(sorted(p for p in files if p not in referenced))
    if force:
        for path in unused:
            if remote:
                store.delete(path)
            else:
                repo.cache.path(path).unlink(missing_ok=True)
        if not remote:
            repo.cache.forget(unused)
            _remove_stale_views(repo, {m.content_key() for m in live})
    return GcReport(where, unused, sum(files[p] for p in unused), deleted=force)


def _remove_stale_views(repo: Repo, live_keys: set[str]) -> None:
    for view in repo.cache.views():
        # A remote view (KEY-BASE.lance) stays with its manifest too: a reader may be using it.
        if view.name.removesuffix(".lance").partition("-")[0] not in live_keys:
            shutil.rmtree(view, ignore_errors=True)
    shutil.rmtree(repo.cache.tmp, ignore_errors=True)
