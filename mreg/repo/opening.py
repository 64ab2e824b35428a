"""``Repo.open``: one exact version of an artifact as a Lance dataset, from the cache or read in
place from a remote.

Read in place, nothing is downloaded ahead: the cache holds a *remote view* (one committed Lance
version, a few KiB, no data; see ``Cache.open``) whose data files are on the remote, and Lance
fetches the byte ranges it needs. The sha256 the manifest records covers whole files and cannot
be checked on such partial reads: data read from a remote is as trustworthy as the remote. Read
from the cache, every file's sha256 is checked once per process before first use (see
``Cache.check``); ``mreg verify --remote`` checks the remote.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mreg.errors import MissingData, UsageError
from mreg.repo.download import fetch_manifests
from mreg.storage import lance_location

if TYPE_CHECKING:
    import lance

    from mreg.repo.manifest import Manifest
    from mreg.repo.targets import Target
    from mreg.repo.work_tree import WorkTree


def open_dataset(repo: WorkTree, target: Target, remote: str | None) -> lance.LanceDataset:
    """``target``'s version from the cache (what it lacks is fetched from the default remote
    first), or with ``remote`` read in place from that remote."""
    if remote is not None:
        return _open_in_place(repo, target.manifest, remote)
    _ensure_cached(repo, target)
    return repo.cache.open(target.manifest)


def _open_in_place(repo: WorkTree, manifest: Manifest, remote: str) -> lance.LanceDataset:
    """MissingData naming the remote up front when it lacks a data file of ``manifest``."""
    store = repo.store(remote)
    present = store.list_files()
    absent = [f for f in manifest.files if present.get(f.path) != f.size]
    if absent:
        raise MissingData(
            f"{store.description} lacks {len(absent)} data file(s) of '{manifest.name}' "
            f"(first: {absent[0].path})",
            hint=f"run `mreg push {manifest.name}` where the data are cached",
        )
    base, storage_options = lance_location(repo.remote(remote), repo.root)
    return repo.cache.open(manifest, base, storage_options)


def _ensure_cached(repo: WorkTree, target: Target) -> None:
    """Fetch what ``target`` lacks from the default remote, if one is configured."""
    if not repo.cache.missing(target.manifest.files):
        return
    if repo.config.default_remote_name() is None:
        raise MissingData(
            f"'{target.manifest.name}' is not in the cache and no default remote is set",
            hint="run `mreg remote add NAME URL --default`, then `mreg fetch`",
        )
    with repo.lock.held():
        fetch_manifests(repo, [target], remote=None, jobs=8)


def load_state_dict(repo: WorkTree, target: Target) -> dict[str, Any]:
    """The tensors of the model ``target`` as a flat dict of torch tensors, read from the cache
    (fetched first where it lacks them) and checked."""
    from mreg.repo.tensor_reader import state_dict

    name = target.manifest.name
    if target.manifest.kind != "model":
        raise UsageError(f"'{name}' is a dataset; use mreg.open() for its rows")
    if target.manifest.chunks:
        raise UsageError(
            f"'{name}' is opaque bytes ({target.manifest.source.format}), not tensors",
            hint=f"`mreg checkout {name}` gives the file back",
        )
    dataset = open_dataset(repo, target, None)  # checks every cache file, see Cache.check
    checked = {e.sha256 for e in target.manifest.files if repo.cache.is_checked(e)}
    return state_dict(dataset, target.manifest, checked)
