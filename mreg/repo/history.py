"""``mreg tag`` and ``mreg log``: tag the committed version of an artifact, and list its history
(every commit that changed its manifest, every version tag)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import ArtifactNotFound, ManifestError, UsageError
from mreg.repo import manifest as manifests
from mreg.repo.manifest import Manifest, check_name
from mreg.repo.versions import check_tag_name, check_version

if TYPE_CHECKING:
    from mreg.repo.git import Commit
    from mreg.repo.work_tree import WorkTree


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


def tag(repo: WorkTree, name: str, version: str, message: str | None = None) -> str:
    """Tag the committed version of ``name`` as ``NAME@VERSION``; returns the tag name."""
    check_name(name)
    check_tag_name(name)
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


def log(repo: WorkTree, name: str) -> list[LogEntry]:
    """Every commit that changed ``name``'s manifest and every version tag, newest first. The
    manifest is followed by name, not path: across ``mreg move`` and a change of format (which
    changes the file name), the whole history shows."""
    found = repo.lookup(name) or (repo.lookup(name, "HEAD") if repo.git.has_commits() else None)
    if found is None:
        raise ArtifactNotFound(f"no artifact named '{name}'", hint="see `mreg ls`")
    tags: dict[str, list[str]] = {}
    for tag_ in repo.git.tags(f"{name}@"):
        tags.setdefault(tag_.commit, []).append(tag_.name)
    history = _history(repo, name)
    for sha in tags:
        if sha not in history:
            at = repo.lookup(name, sha)
            if at is not None:
                history[sha] = (repo.git.commit(sha), at[1])
    entries = []
    for commit, manifest in sorted(history.values(), key=lambda e: e[0].date, reverse=True):
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


def _history(repo: WorkTree, name: str) -> dict[str, tuple[Commit, Manifest]]:
    """sha -> (commit, ``name``'s manifest there) for every commit that wrote a manifest of
    that name, at any path; all manifests read through one ``git cat-file``."""
    changes = repo.git.changes(manifests.SUFFIX)
    blobs = repo.git.read_blobs([f"{c.sha}:{p}" for c, paths in changes for p in paths])
    history: dict[str, tuple[Commit, Manifest]] = {}
    for commit, paths in changes:
        for rel in paths:
            data = blobs.get(f"{commit.sha}:{rel}")
            if data is None or commit.sha in history:
                continue
            try:
                manifest = manifests.loads(data.decode("utf-8"), f"{rel} at {commit.sha[:12]}")
            except (ManifestError, UnicodeDecodeError):
                continue
            if manifest.name == name:
                history[commit.sha] = (commit, manifest)
    return history
