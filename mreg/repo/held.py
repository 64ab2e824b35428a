"""Which bytes in the work tree mreg holds: those it wrote or added, whose data the cache still
has. Replacing or removing them loses nothing; anything else is the user's work, which checkout
and pull refuse to overwrite without ``--force``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import WorkTreeChanged
from mreg.hashing import tree_files
from mreg.repo import manifest as manifests

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.repo.work_tree import WorkTree


def holds(repo: WorkTree, artifact_rel: str, digest: str | None, known: bool = False) -> bool:
    """Whether the bytes with ``digest`` at ``artifact_rel`` are ones mreg wrote or added there,
    and the cache still has their data: replacing or removing them loses nothing. A record of
    an older mreg, which did not list the data files, counts unless ``known`` is asked for."""
    held = repo.state.held(artifact_rel)
    if held is None or held.sha256 != digest:
        return False
    if held.files is None:
        return not known
    return not repo.cache.missing(held.files)


def unheld_changes(repo: WorkTree, artifact_rel: str, manifest: Manifest) -> list[str]:
    """Paths of work the artifact's file or folder holds that mreg does not: a change never
    added, or files put in a tracked folder (named one by one when mreg knows what it wrote)."""
    digest = repo.workspace_digest(artifact_rel, manifest.source.companions)
    if digest is None or repo.workspace_in_sync(artifact_rel, manifest):
        return []
    if holds(repo, artifact_rel, digest):
        return []
    path = repo.root / artifact_rel
    held = repo.state.held(artifact_rel)
    if held is not None and held.sha256 == digest:
        return [f"{artifact_rel} (mreg wrote it, but its data are no longer in the cache)"]
    if path.is_dir() and held is not None and held.names:
        names = {p.relative_to(path).as_posix() for p in tree_files(path)}
        extra = sorted(names - set(held.names))
        if extra:
            return [f"{artifact_rel}/{name}" for name in extra]
    return [artifact_rel + ("/" if path.is_dir() else "")]


def refuse_unheld_changes(
    repo: WorkTree, artifacts: list[tuple[str, Manifest]], command: str
) -> None:
    """WorkTreeChanged naming every path of ``artifacts`` that holds work mreg does not hold."""
    changed = [p for rel, manifest in artifacts for p in unheld_changes(repo, rel, manifest)]
    if not changed:
        return
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    raise WorkTreeChanged(
        f"{command} would overwrite work that mreg does not hold: {shown}",
        hint=f"keep it with `mreg add PATH`, or discard it with `mreg {command} --force`",
    )


def remove_leftovers(repo: WorkTree, tracked: set[str]) -> tuple[list[str], list[str]]:
    """Delete the files (or folders) mreg wrote or added for artifacts whose manifest is no
    longer in the work tree (a ``git checkout`` of a commit without them): git would see them as
    new files. Only bytes mreg holds are deleted; the others are kept. Returns (removed, kept)."""
    removed, kept = [], []
    for rel in repo.state.held_paths():
        if rel + manifests.SUFFIX in tracked or not _inside_work_tree(repo, rel):
            continue
        path = repo.root / rel
        if not path.exists():
            repo.state.forget_held(rel)
            continue
        if not holds(repo, rel, repo.state.file_sha256(rel), known=True):
            kept.append(rel)
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        repo.state.forget_held(rel)
        removed.append(rel)
    return removed, kept


def _inside_work_tree(repo: WorkTree, rel: str) -> bool:
    """A path the state names is trusted only if it stays in the work tree, outside .git and
    .mreg, without passing through a symbolic link."""
    path = repo.root / rel
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts or parts[0] in (".git", ".mreg"):
        return False
    return path.parent.resolve() == repo.root / Path(rel).parent and not path.is_symlink()
