"""Read a model's history from GTO-compatible git tags (their grammar: ``mreg.repo.versions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mreg.errors import RegistryError
from mreg.repo.git import Tag
from mreg.repo.versions import STAGE_TAG, VERSION, VERSION_TAG

if TYPE_CHECKING:
    from mreg.repo import Repo

DEPRECATED = "deprecated"


@dataclass(frozen=True)
class StageEvent:
    stage: str
    number: int
    assigned: bool
    commit: str
    tag: str


@dataclass
class ModelHistory:
    """Every registry tag of one model."""

    name: str
    registered: dict[str, Tag] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    stage_events: list[StageEvent] = field(default_factory=list)
    deprecated: bool = False

    def versions(self) -> list[str]:
        """Registered versions that were not removed, oldest first (by semantic version)."""
        return sorted((v for v in self.registered if v not in self.removed), key=version_key)

    def latest(self) -> str | None:
        active = self.versions()
        return active[-1] if active else None

    def all_versions(self) -> list[str]:
        """Every version ever registered, removed ones included (their tags stay)."""
        return sorted(self.registered, key=version_key)

    def version_at(self, commit: str) -> str | None:
        """The newest active version registered at ``commit``."""
        found = [v for v in self.versions() if self.registered[v].commit == commit]
        return found[-1] if found else None

    def current_stages(self) -> dict[str, str]:
        """Stage -> version: per stage, the latest assignment that was not undone."""
        holders: dict[str, list[str]] = {}
        for event in sorted(self.stage_events, key=lambda e: e.number):
            version = self.version_at(event.commit)
            if version is None:
                continue
            stage = holders.setdefault(event.stage, [])
            if version in stage:
                stage.remove(version)
            if event.assigned:
                stage.append(version)
        return {stage: versions[-1] for stage, versions in sorted(holders.items()) if versions}

    def stages_of(self, version: str) -> tuple[str, ...]:
        return tuple(s for s, v in self.current_stages().items() if v == version)

    def next_number(self) -> int:
        return max((e.number for e in self.stage_events), default=0) + 1


def read_histories(repo: Repo, name: str = "") -> dict[str, ModelHistory]:
    """The history of every model with registry tags (of ``name`` only, when given)."""
    histories: dict[str, ModelHistory] = {}
    for tag in repo.git.tags(name):
        _record(histories, tag)
    if name:
        return {name: histories.get(name, ModelHistory(name))}
    return dict(sorted(histories.items()))


def _record(histories: dict[str, ModelHistory], tag: Tag) -> None:
    if (match := VERSION_TAG.match(tag.name)) is not None:
        history = histories.setdefault(match["name"], ModelHistory(match["name"]))
        if match["removed"]:
            history.removed.add(match["version"])
        else:
            history.registered[match["version"]] = tag
    elif (match := STAGE_TAG.match(tag.name)) is not None:
        history = histories.setdefault(match["name"], ModelHistory(match["name"]))
        event = StageEvent(
            match["stage"], int(match["number"]), not match["undo"], tag.commit, tag.name
        )
        history.stage_events.append(event)
    elif tag.name.endswith(f"@{DEPRECATED}"):
        name = tag.name.removesuffix(f"@{DEPRECATED}")
        histories.setdefault(name, ModelHistory(name)).deprecated = True


def normalize_version(version: str) -> str:
    """``1.0.0`` or ``v1.0.0`` as ``v1.0.0``; RegistryError for anything else."""
    text = str(version).strip()
    text = text if text.startswith("v") else f"v{text}"
    if not VERSION.match(text):
        raise RegistryError(
            f"'{version}' is not a valid version",
            hint="use MAJOR.MINOR.PATCH, for example 1.2.0 or v1.2.0",
        )
    return text


def is_version(text: str) -> bool:
    return bool(VERSION.match(text if text.startswith("v") else f"v{text}"))


def version_key(version: str) -> tuple[int, int, int]:
    major, minor, patch = version.removeprefix("v").split(".")
    return int(major), int(minor), int(patch)


def bump_patch(history: ModelHistory) -> str:
    """The next version after every version ever registered (v0.1.0 for the first)."""
    every = history.all_versions()
    if not every:
        return "v0.1.0"
    major, minor, patch = version_key(every[-1])
    return f"v{major}.{minor}.{patch + 1}"
