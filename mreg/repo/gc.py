"""``mreg gc``: find (and with ``force`` delete) data that nothing this clone can see references.

What counts as referenced (the data of these manifests are kept):

- the manifests in every work tree of the repository (``git worktree list``) and in its index;
- the manifests of every commit that HEAD of a work tree, any ref under ``refs/`` (branches,
  remote-tracking branches, tags, ``refs/stash``, ``refs/notes``, ...) or any reflog entry
  points at, and of the index and untracked-files commits of every stash entry; with
  ``all_commits``, of every commit reachable from those.

A remote is shared with clones this one cannot see, so a remote gc also (1) first fetches every
ref of every git remote (branches, tags, pull requests, ...) and counts them, and (2) never
deletes an object younger than ``older_than``: ``mreg push`` uploads data before the
``git push`` that makes a commit reference it.
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import GitError, RemoteError, UsageError
from mreg.repo import manifest as manifests
from mreg.repo.git import GitRepo

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.repo.work_tree import WorkTree

DEFAULT_OLDER_THAN = "7d"
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass(frozen=True)
class GcReport:
    where: str
    unused: tuple[str, ...]
    bytes: int
    deleted: bool
    # Unreferenced remote objects spared because they are younger than ``older_than``.
    too_young: tuple[str, ...] = ()
    # Git remotes whose every ref was fetched and counted first.
    fetched: tuple[str, ...] = ()


def kept_manifests(
    repo: WorkTree, all_commits: bool = False, also: list[str] | None = None
) -> list[Manifest]:
    """Every manifest whose data gc keeps (see the module's docstring); ``also``: more
    revisions to count (the refs fetched from git remotes)."""
    found: list[Manifest] = []
    blobs: set[str] = set()
    for tree in repo.git.refs.work_trees() or [repo.root]:
        git = GitRepo(tree)
        found += [manifests.read(tree / rel, rel) for rel in git.work_tree_files(manifests.SUFFIX)]
        blobs |= git.refs.index_blobs(manifests.SUFFIX)
    commits = repo.git.refs.kept_commits(walk=all_commits, also=also or [])
    blobs |= repo.git.refs.blobs_named(commits, manifests.SUFFIX)
    for sha, data in repo.git.read_blobs(sorted(blobs)).items():
        found.append(manifests.loads(data.decode("utf-8"), f"manifest (git blob {sha[:12]})"))
    return found


def gc(
    repo: WorkTree,
    remote: str | None,
    force: bool,
    all_commits: bool = False,
    older_than: str = DEFAULT_OLDER_THAN,
    fetch: bool = True,
) -> GcReport:
    """List (with ``force``, delete) the files of the cache or of ``remote`` that no kept
    manifest references; on a remote, only those older than ``older_than`` (``7d``, ``12h``,
    ``0s``), after counting every ref of every git remote (unless ``fetch`` is False)."""
    if remote is None:
        return _gc_cache(repo, force, all_commits)
    age = parse_duration(older_than)
    store = repo.store(remote)
    # Listed before the refs are read: an object pushed after this listing is not touched.
    listing = store.listing()
    cutoff = time.time() - age
    fetched = tuple(repo.git.refs.git_remotes()) if fetch else ()
    tips = [sha for name in fetched for sha in _fetch(repo, name)]
    referenced = {f.path for m in kept_manifests(repo, all_commits, tips) for f in m.files}
    unreferenced = sorted(p for p in listing if p not in referenced)
    unused = tuple(p for p in unreferenced if listing[p].modified < cutoff)
    too_young = tuple(p for p in unreferenced if listing[p].modified >= cutoff)
    if force:
        for path in unused:
            store.delete(path)
    size = sum(listing[p].size for p in unused)
    return GcReport(store.description, unused, size, force, too_young, fetched)


def _gc_cache(repo: WorkTree, force: bool, all_commits: bool) -> GcReport:
    live = kept_manifests(repo, all_commits)
    referenced = {f.path for m in live for f in m.files}
    files = repo.cache.all_files()
    unused = tuple(sorted(p for p in files if p not in referenced))
    served = _stale_served(repo, {m.content_key() for m in live})
    if force:
        for path in unused:
            repo.cache.path(path).unlink(missing_ok=True)
        repo.cache.forget(unused)
        _remove_stale_views(repo, {m.content_key() for m in live})
        for file in served:
            file.unlink(missing_ok=True)
    size = sum(files[p] for p in unused) + sum(p.stat().st_size for p in served if p.exists())
    listed = unused + tuple(p.relative_to(repo.cache.root).as_posix() for p in served)
    return GcReport("cache", listed, size, deleted=force)


def _stale_served(repo: WorkTree, live_keys: set[str]) -> tuple[Path, ...]:
    """The files ``mreg serve`` rebuilt for downloads of versions no kept manifest holds, and
    every export it made (named by commit, rebuilt on the next request): without this, each
    version ever downloaded from a server stayed in the cache in full."""
    folder = repo.cache.served
    if not folder.is_dir():
        return ()
    return tuple(
        path
        for path in sorted(folder.iterdir())
        if path.is_file() and path.name.removesuffix(".sha256") not in live_keys
    )


def _fetch(repo: WorkTree, git_remote: str) -> list[str]:
    try:
        return repo.git.refs.fetch_every_ref(git_remote)
    except GitError as error:
        raise RemoteError(
            f"{error.message} (a remote gc counts every ref of every git remote first)",
            hint=f"make git remote '{git_remote}' reachable, or pass --no-fetch to count only "
            "the refs this clone has (a teammate's unfetched branch then keeps only the "
            "--older-than grace period)",
        ) from None


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number and a unit, ``s``, ``m``, ``h``, ``d`` or ``w``."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", text)
    if not match:
        raise UsageError(
            f"'{text}' is not a duration", hint="use a number and a unit: 0s, 30m, 12h, 7d, 2w"
        )
    return float(match[1]) * _UNITS[match[2]]


def _remove_stale_views(repo: WorkTree, live_keys: set[str]) -> None:
    for view in repo.cache.views():
        # A remote view (KEY-BASE.lance) stays with its manifest too: a reader may be using it.
        if view.name.removesuffix(".lance").partition("-")[0] not in live_keys:
            shutil.rmtree(view, ignore_errors=True)
    shutil.rmtree(repo.cache.tmp, ignore_errors=True)
