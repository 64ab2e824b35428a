"""Which artifact a spec means: ``NAME``, ``NAME@VERSION``, ``NAME@REV`` or a path resolved to one
``Target``; and the manifests that the refs of the repository reach."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from mreg.errors import ArtifactNotFound, UsageError
from mreg.repo.manifest import SUFFIX, Manifest, loads, read

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree

# The artifacts a command names (``NAME``, ``NAME@REV`` or a path each); None or none: all.
Specs: TypeAlias = list[str] | None


@dataclass(frozen=True)
class Target:
    """An artifact as a command addresses it: its manifest, and the revision it came from."""

    manifest_rel: str
    manifest: Manifest
    rev: str | None = None

    @property
    def artifact_rel(self) -> str:
        return self.manifest_rel.removesuffix(SUFFIX)


def manifests_by_blob(repo: WorkTree, rev: str, skip: set[str]) -> list[tuple[str, Manifest]]:
    """Manifests at ``rev`` as (blob sha, manifest), skipping blobs already seen."""
    found = []
    for blob, rel in repo.git.blobs_at(rev, SUFFIX):
        if blob not in skip:
            text = repo.git.blob(blob).decode("utf-8")
            found.append((blob, loads(text, f"{rel} at {rev[:12]}")))
    return found


def live_manifests(repo: WorkTree, all_commits: bool = False) -> list[Manifest]:
    """Manifests in the work tree and at the tip of every branch and tag (or every commit)."""
    revisions = repo.git.refs.all_commits() if all_commits else repo.git.refs.ref_tips()
    found = list(repo.manifests().values())
    seen_blobs: set[str] = set()
    for rev in revisions:
        for blob, manifest in manifests_by_blob(repo, rev, skip=seen_blobs):
            seen_blobs.add(blob)
            found.append(manifest)
    return found


def resolve(repo: WorkTree, spec: str) -> Target:
    """Resolve ``NAME``, ``NAME@VERSION``, ``NAME@REV`` or a path to one artifact.

    A path (relative to the current directory) to an artifact of this work tree comes first;
    a path outside the work tree, or to no artifact, is looked up as a name, so the current
    directory never hides an artifact of another repository. A path outside that is no name
    either is refused as outside the repository.
    """
    name, _, rev = spec.partition("@")
    if rev:
        rev = f"{name}@{rev}" if repo.git.tags(f"{name}@{rev}") else rev
        repo.git.resolve(rev)
        found = repo.lookup(name, rev)
        if found is None:
            raise ArtifactNotFound(f"no artifact named '{name}' at {rev}")
        return Target(found[0], found[1], rev)
    refused: UsageError | None = None
    try:
        at_path = by_path(repo, spec)
    except UsageError as error:
        at_path, refused = None, error
    if at_path is not None:
        return at_path
    found = repo.lookup(spec)
    if found is not None:
        return Target(*found)
    if refused is not None:
        raise refused
    raise ArtifactNotFound(f"no artifact named '{spec}'", hint="see `mreg ls`")


def resolve_all(repo: WorkTree, specs: list[str] | tuple[str, ...] | None) -> list[Target]:
    """The named artifacts, or every artifact in the work tree when none is named."""
    if specs:
        return [resolve(repo, spec) for spec in specs]
    return [Target(rel, m) for rel, m in repo.manifests().items()]


def by_path(repo: WorkTree, spec: str) -> Target | None:
    """The artifact whose file, folder or manifest the path ``spec`` names; None when it
    names none (UsageError when it lies outside the work tree)."""
    candidate = Path(spec)
    if not candidate.exists() and not Path(spec + SUFFIX).exists():
        return None
    absolute = repo.path_in_work_tree(candidate)
    rel = repo.relpath(absolute)
    rel = rel if rel.endswith(SUFFIX) else rel + SUFFIX
    if not (repo.root / rel).exists():
        return None
    return Target(rel, read(repo.root / rel, rel))
