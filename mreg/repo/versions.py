"""Versions as git tags (``NAME@vX.Y.Z``, the GTO convention) and an artifact's history."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import ArtifactNotFound, UsageError
from mreg.repo import manifest as manifests
from mreg.repo.manifest import check_name

if TYPE_CHECKING:
    from mreg.repo import Repo

VERSION = re.compile(r"^v(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")


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
