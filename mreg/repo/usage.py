"""``mreg du``: how many bytes the versions of each artifact stand for, and how many they take.

A version's logical size is the size of the file (or folder) it restores; its data files are
shared with other versions (unchanged tensors, rows and chunks are reused, see ``add``), so
the stored size of several versions is the size of the union of their files. The versions
counted are those ``gc`` keeps by default: the work tree's and those at the tip of every branch
and tag (each registered version has a tag).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.repo.targets import live_manifests

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.repo.work_tree import WorkTree


@dataclass(frozen=True)
class Footprint:
    """Logical bytes (what the versions restore) against stored bytes (their distinct files)."""

    name: str
    versions: int
    logical: int
    stored: int

    @property
    def ratio(self) -> float:
        """How many times the versions' logical size is their stored size (1.0: no saving)."""
        return self.logical / self.stored if self.stored else 1.0


@dataclass(frozen=True)
class Usage:
    artifacts: tuple[Footprint, ...]
    total: Footprint
    # The remote's objects (``stored``: their bytes) and the versions it holds whole.
    remote: Footprint | None = None
    remote_objects: int = 0


def du(repo: WorkTree, remote: str | None = None) -> Usage:
    """The footprint of every artifact's kept versions, of all of them together (a file two
    artifacts share counts once), and with ``remote``, of what that remote stores."""
    versions = _distinct(live_manifests(repo))
    names = sorted({m.name for m in versions})
    artifacts = tuple(footprint(name, [m for m in versions if m.name == name]) for name in names)
    total = footprint("total", versions)
    if remote is None:
        return Usage(artifacts, total)
    store = repo.store(remote)
    listing = store.list_files()
    whole = [m for m in versions if all(listing.get(f.path) == f.size for f in m.files)]
    on_remote = Footprint(
        store.description, len(whole), sum(m.source.size for m in whole), sum(listing.values())
    )
    return Usage(artifacts, total, on_remote, len(listing))


def footprint(name: str, versions: list[Manifest]) -> Footprint:
    """``versions`` counted once each; their files counted once each."""
    files = {f.path: f.size for m in versions for f in m.files}
    return Footprint(name, len(versions), sum(m.source.size for m in versions), sum(files.values()))


def _distinct(manifests: list[Manifest]) -> list[Manifest]:
    """One manifest per distinct version (the work tree's is often also at HEAD and a tag)."""
    unique: dict[tuple[str, str, str], Manifest] = {}
    for manifest in manifests:
        key = (manifest.name, manifest.content_key(), manifest.source.sha256)
        unique.setdefault(key, manifest)
    return list(unique.values())
