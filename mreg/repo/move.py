"""``mreg move``: move an artifact (file or folder) and its manifest inside the work tree,
keep the .gitignore lines beside both places right, and stage the move in git."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from mreg.atomic import atomic_write_text
from mreg.errors import ArtifactNotFound, NameConflict
from mreg.repo import manifest as manifests
from mreg.repo.gitignore import ignore_in_git, ignore_line
from mreg.repo.targets import by_path

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree


@dataclass(frozen=True)
class Moved:
    name: str
    old: str  # artifact paths, relative to the root
    new: str
    staged: tuple[str, ...]  # what `git add` took: the manifests and .gitignore files


def move(repo: WorkTree, old: str | Path, new: str | Path) -> Moved:
    """Move the artifact at ``old`` (its file or folder, its manifest, companion files) to
    ``new``, or into ``new`` when that is a folder. Everything is checked before anything moves:
    a missing artifact, a path outside the work tree or a target that exists changes nothing."""
    target = by_path(repo, str(old))
    if target is None:
        raise ArtifactNotFound(
            f"{old} is not a tracked artifact (no {Path(old).name}{manifests.SUFFIX} beside it)",
            hint="see `mreg ls`",
        )
    old_rel = target.artifact_rel
    destination = repo.path_in_work_tree(new)
    if destination.is_dir():
        destination = destination / PurePosixPath(old_rel).name
    new_rel = repo.relpath(destination)
    if new_rel == old_rel:
        raise NameConflict(f"{old} and {new} are the same place", hint="name another path")
    pairs = _paths_to_move(repo, old_rel, new_rel, target.manifest.source.companions)
    for _, dest in pairs:
        if os.path.lexists(repo.root / dest):
            raise NameConflict(
                f"{dest} exists already; mreg move never overwrites it",
                hint="move or remove it first, or pick another name",
            )
    repo.write_target(new_rel)
    new_manifest_rel = new_rel + manifests.SUFFIX
    manifest = replace(target.manifest, path=PurePosixPath(new_rel).name)
    (repo.root / new_rel).parent.mkdir(parents=True, exist_ok=True)
    for source, dest in pairs:
        if os.path.lexists(repo.root / source):
            os.replace(repo.root / source, repo.root / dest)
            repo.state.moved(source, dest)
    manifests.write(repo.root / new_manifest_rel, manifest)
    gitignores = _unignore(repo, old_rel, target.manifest.source.companions)
    ignore_in_git(repo.root, new_rel)
    for companion in manifest.source.companions:
        ignore_in_git(repo.root, (PurePosixPath(new_rel).parent / companion).as_posix())
    gitignores.add((PurePosixPath(new_rel).parent / ".gitignore").as_posix())
    staged = _stage(repo, [target.manifest_rel, new_manifest_rel, *sorted(gitignores)])
    return Moved(manifest.name, old_rel, new_rel, staged)


def _paths_to_move(
    repo: WorkTree, old_rel: str, new_rel: str, companions: tuple[str, ...]
) -> list[tuple[str, str]]:
    """(from, to) of the artifact, its manifest and its companion files."""
    pairs = [(old_rel, new_rel), (old_rel + manifests.SUFFIX, new_rel + manifests.SUFFIX)]
    old_folder, new_folder = PurePosixPath(old_rel).parent, PurePosixPath(new_rel).parent
    if old_folder != new_folder:
        pairs += [((old_folder / c).as_posix(), (new_folder / c).as_posix()) for c in companions]
    return pairs


def _unignore(repo: WorkTree, old_rel: str, companions: tuple[str, ...]) -> set[str]:
    """Drop the lines that ignored the artifact (and its companions) at its old place; the
    .gitignore file is removed when nothing else is left in it. Returns its path."""
    folder = PurePosixPath(old_rel).parent
    gitignore_rel = (folder / ".gitignore").as_posix()
    gitignore = repo.root / gitignore_rel
    if not gitignore.exists():
        return set()
    stale = {ignore_line(PurePosixPath(old_rel).name)}
    stale |= {ignore_line(c) for c in companions} if companions else set()
    lines = gitignore.read_text().splitlines()
    kept = [line for line in lines if line not in stale]
    if kept == lines:
        return set()
    if any(line.strip() for line in kept):
        atomic_write_text(gitignore, "\n".join(kept) + "\n")
    else:
        gitignore.unlink()
    return {gitignore_rel}


def _stage(repo: WorkTree, paths: list[str]) -> tuple[str, ...]:
    """``git add -A`` of those ``paths`` that exist or that git tracks: the move is staged as
    git mv would stage it (the old manifest removed, the new one added)."""
    chosen = [p for p in dict.fromkeys(paths) if (repo.root / p).exists() or repo.git.tracked(p)]
    if chosen:
        repo.git.stage(chosen)
    return tuple(chosen)
