"""Versions as git tags (``NAME@vX.Y.Z``, the GTO convention), the data every tagged version
needs, and an artifact's history.

* ``NAME@vX.Y.Z``: version X.Y.Z registered at the tagged commit; ``NAME@vX.Y.Z!``: deregistered.
* ``NAME#STAGE#N``: the version at the tagged commit enters STAGE; ``NAME#STAGE!#N``: it leaves.
  N counts stage events per model, starting at 1, and orders them.
* ``NAME@deprecated``: the whole model is deprecated.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import ArtifactNotFound, UsageError
from mreg.repo import manifest as manifests
from mreg.repo.index import ManifestIndex
from mreg.repo.manifest import FileEntry, check_name

if TYPE_CHECKING:
    from mreg.repo import Repo, Target

VERSION = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
VERSION_TAG = re.compile(r"^(?P<name>[^@#]+)@(?P<version>v\d+\.\d+\.\d+)(?P<removed>!)?$")
STAGE_TAG = re.compile(r"^(?P<name>[^@#]+)#(?P<stage>[^#!]+)(?P<undo>!)?#(?P<number>\d+)$")


@dataclass(frozen=True)
class TaggedVersion:
    """A version a git tag names (``NAME@vX.Y.Z``, or a stage tag), and its data files."""

    name: str
    tag: str
    commit: str
    manifest_rel: str
    kind: str
    files: tuple[FileEntry, ...]


@dataclass(frozen=True)
class LogEntry:
    commit: str
    date: str
    subject: str
    tags: tuple[str, ...]
    rows: int
    parameters: int
    source_sha256: str
    data_size: int


def check_version(version: str) -> str:
    if not VERSION.match(version):
        raise UsageError(
            f"'{version}' is not a version", hint="use vMAJOR.MINOR.PATCH, for example v1.2.0"
        )
    return version


def tag(repo: Repo, name: str, version: str, message: str | None = None) -> str:
    """Tag the committed version of ``name`` as ``NAME@VERSION``; returns the tag name."""
    check_name(name)
    check_version(version)
    if not repo.git.has_commits() or repo.lookup(name, "HEAD") is None:
        raise ArtifactNotFound(
            f"no committed artifact named '{name}'",
            hint="`git add` and `git commit` its manifest first",
        )
    _, committed = repo.lookup(name, "HEAD")  # type: ignore[misc]
    current = repo.lookup(name)
    if current is not None and current[1] != committed:
        raise UsageError(
            f"'{name}' has uncommitted changes; a tag marks a commit",
            hint=f"commit {current[0]} first",
        )
    tag_name = f"{name}@{version}"
    repo.git.create_tag(tag_name, message or f"{name} {version}")
    return tag_name


def log(repo: Repo, name: str) -> list[LogEntry]:
    """Every commit that changed ``name``'s manifest and every version tag, newest first."""
    found = repo.lookup(name) or (repo.lookup(name, "HEAD") if repo.git.has_commits() else None)
    if found is None:
        raise ArtifactNotFound(f"no artifact named '{name}'", hint="see `mreg ls`")
    manifest_rel = found[0]
    tags: dict[str, list[str]] = {}
    for tag_ in repo.git.tags(f"{name}@"):
        tags.setdefault(tag_.commit, []).append(tag_.name)
    commits = {c.sha: c for c in repo.git.log(manifest_rel)}
    for sha in tags:
        if sha not in commits:
            commits[sha] = repo.git.commit(sha)
    entries = []
    for commit in sorted(commits.values(), key=lambda c: c.date, reverse=True):
        data = repo.git.show(commit.sha, manifest_rel)
        if data is None:
            continue
        manifest = manifests.loads(data.decode("utf-8"), f"{manifest_rel} at {commit.sha[:12]}")
        entries.append(
            LogEntry(
                commit=commit.sha,
                date=commit.date,
                subject=commit.subject,
                tags=tuple(sorted(tags.get(commit.sha, []))),
                rows=manifest.rows,
                parameters=manifest.parameters,
                source_sha256=manifest.source.sha256,
                data_size=manifest.data_size,
            )
        )
    return entries


def tagged_versions(repo: Repo, folders: dict[str, str]) -> list[TaggedVersion]:
    """Every registered version (``NAME@vX.Y.Z`` not deregistered) and every commit a stage
    tag assigns, with the data files of its name's manifest at that commit, by name and tag.

    Manifests are found through the version index, cached per git object, so this costs a few
    git calls however many versions there are; ``folders`` (name -> folder, ``""`` for the root)
    says where each name's manifest is looked for first. A tag whose commit holds no manifest
    of its name is left out.
    """
    labels = _version_labels(repo)
    index = ManifestIndex(repo)
    found = index.lookup(list(labels), folders)
    index.save()
    versions = []
    for (name, commit), tag in labels.items():
        place = found.get(f"{commit}:{name}")
        if place is not None:
            rel, facts = place
            versions.append(TaggedVersion(name, tag, commit, rel, facts.kind, facts.files))
    return sorted(versions, key=lambda v: (v.name, v.tag))


def _version_labels(repo: Repo) -> dict[tuple[str, str], str]:
    """(name, commit) -> the tag naming it: its version tag, else its first stage tag. Stage
    tags on the commit of a deregistered version (and of no other) are left out."""
    registered: dict[tuple[str, str], tuple[str, str]] = {}  # (name, version) -> (commit, tag)
    removed: set[tuple[str, str]] = set()
    staged: dict[tuple[str, str], str] = {}
    for tag in repo.git.tags():
        if (match := VERSION_TAG.match(tag.name)) is not None:
            key = (match["name"], match["version"])
            if match["removed"]:
                removed.add(key)
            else:
                registered[key] = (tag.commit, tag.name)
        elif (match := STAGE_TAG.match(tag.name)) is not None and not match["undo"]:
            staged.setdefault((match["name"], tag.commit), tag.name)
    labels: dict[tuple[str, str], str] = {}
    gone: set[tuple[str, str]] = set()
    for (name, version), (commit, tag_name) in sorted(registered.items()):
        if (name, version) in removed:
            gone.add((name, commit))
        else:
            labels.setdefault((name, commit), tag_name)
    for key, tag_name in sorted(staged.items()):
        if key not in gone:
            labels.setdefault(key, tag_name)
    return labels


def work_tree_folders(targets: list[Target]) -> dict[str, str]:
    """Name -> the folder of its manifest in the work tree: where ``tagged_versions`` looks
    for it at other commits first."""
    return {t.manifest.name: posixpath.dirname(t.manifest_rel) for t in targets}
