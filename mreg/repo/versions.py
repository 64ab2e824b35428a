"""Versions as git tags, in GTO's grammar, and the data every tagged version needs (``history``
tags a version and lists an artifact's history).

The tags, as GTO 1.10 writes and reads them (``gto/constants.py``), N an optional counter:

* ``NAME@vX.Y.Z[#N]``: version X.Y.Z (a semantic version: ``v1.0.0-rc.1``, ``v1.0.0+build.5``)
  registered at the tagged commit; ``NAME@vX.Y.Z![#N]``: deregistered.
* ``NAME#STAGE[#N]``: the version at the tagged commit enters STAGE; ``NAME#STAGE![#N]``: it
  leaves. mreg writes the counted form (N counts the artifact's events from 1); ``gto assign
  --simple true`` writes the plain one. Events are ordered by tag date, then N.
* ``NAME@deprecated[#N]``: the whole artifact is deprecated (``NAME@created``: read, no effect).

NAME is letters and digits with ``_``, ``-`` and ``/`` inside (GTO's ``DIR=NAME`` reads as
``DIR:NAME``); a stage is spelled the same way.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import UsageError
from mreg.repo.index import ManifestIndex
from mreg.repo.manifest import FileEntry

if TYPE_CHECKING:
    from mreg.repo.targets import Target
    from mreg.repo.work_tree import WorkTree

_NAME = r"[a-zA-Z0-9](?:[a-zA-Z0-9_/-]*[a-zA-Z0-9])?"
_DIRNAME = r"[a-zA-Z0-9_./-]+"
_IDENTIFIER = r"(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)"
_SEMVER = (
    r"(?P<major>0|[1-9]\d*)\.(?P<minor>0|[1-9]\d*)\.(?P<patch>0|[1-9]\d*)"
    rf"(?:-(?P<prerelease>{_IDENTIFIER}(?:\.{_IDENTIFIER})*))?"
    r"(?:\+(?P<build>[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*))?"
)
NAME = re.compile(f"^{_NAME}$")
VERSION = re.compile(f"^v{_SEMVER}$")
TAG = re.compile(
    rf"^(?P<artifact>(?:{_DIRNAME}=)?{_NAME})"
    rf"(?:(?:#(?P<stage>{_NAME})|@(?P<version>v{_SEMVER}))(?P<cancel>!?)"
    r"|@(?P<deprecated>deprecated)|@(?P<created>created))(?:#(?P<number>[0-9]+))?$"
)
REGISTER, DEREGISTER, ASSIGN, UNASSIGN = "register", "deregister", "assign", "unassign"
DEPRECATE, CREATE = "deprecate", "create"


@dataclass(frozen=True)
class TagName:
    """What a registry tag's name says, as GTO reads it."""

    name: str
    action: str
    version: str = ""
    stage: str = ""
    number: int | None = None


def parse_tag(text: str) -> TagName | None:
    """The registry event a tag's name records; None for a tag GTO would not read."""
    match = TAG.match(text)
    if match is None:
        return None
    name = match["artifact"].replace("=", ":")
    number = int(match["number"]) if match["number"] else None
    cancel = bool(match["cancel"])
    if match["version"]:
        action = DEREGISTER if cancel else REGISTER
        return TagName(name, action, version=match["version"], number=number)
    if match["stage"]:
        action = UNASSIGN if cancel else ASSIGN
        return TagName(name, action, stage=match["stage"], number=number)
    return TagName(name, DEPRECATE if match["deprecated"] else CREATE, number=number)


def check_tag_name(name: str, what: str = "name") -> str:
    """``name`` if GTO can read it in a tag (as an artifact name, or a stage); UsageError."""
    if not NAME.match(name):
        raise UsageError(
            f"'{name}' cannot be a registry {what}: GTO reads only letters, digits, '_', '-' "
            "and '/', starting and ending with a letter or digit",
            hint="rename it, for example 'bert-tiny' for 'bert.tiny' or 'net' for 'net_'",
        )
    return name


def version_key(version: str) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...], str]:
    """Semantic-version precedence (``v`` optional): a pre-release sorts before its release,
    numeric identifiers numerically and before words; build metadata only breaks ties."""
    match = VERSION.match(version if version.startswith("v") else f"v{version}")
    if match is None:
        raise UsageError(f"'{version}' is not a version", hint="use vMAJOR.MINOR.PATCH")
    prerelease = match["prerelease"]
    identifiers = tuple(
        (0, int(part), "") if part.isdigit() else (1, 0, part)
        for part in (prerelease.split(".") if prerelease else ())
    )
    return (
        int(match["major"]), int(match["minor"]), int(match["patch"]),
        0 if prerelease else 1, identifiers, match["build"] or "",
    )  # fmt: skip


@dataclass(frozen=True)
class TaggedVersion:
    """A version a git tag names (``NAME@vX.Y.Z``, or a stage tag), and its data files."""

    name: str
    tag: str
    commit: str
    manifest_rel: str
    kind: str
    files: tuple[FileEntry, ...]


def check_version(version: str) -> str:
    if not VERSION.match(version):
        raise UsageError(
            f"'{version}' is not a version",
            hint="use vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], for example v1.2.0 or v2.0.0-rc.1",
        )
    return version


def tagged_versions(repo: WorkTree, folders: dict[str, str]) -> list[TaggedVersion]:
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


def _version_labels(repo: WorkTree) -> dict[tuple[str, str], str]:
    """(name, commit) -> the tag naming it: its version tag, else its first stage tag. Stage
    tags on the commit of a deregistered version (and of no other) are left out."""
    registered: dict[tuple[str, str], tuple[str, str]] = {}  # (name, version) -> (commit, tag)
    removed: set[tuple[str, str]] = set()
    staged: dict[tuple[str, str], str] = {}
    for tag in repo.git.tags():
        parsed = parse_tag(tag.name)
        if parsed is None:
            continue
        if parsed.action == REGISTER:
            registered[(parsed.name, parsed.version)] = (tag.commit, tag.name)
        elif parsed.action == DEREGISTER:
            removed.add((parsed.name, parsed.version))
        elif parsed.action == ASSIGN:
            staged.setdefault((parsed.name, tag.commit), tag.name)
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
