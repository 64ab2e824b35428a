"""Read a model's history from GTO-compatible git tags (their grammar: ``mreg.repo.versions``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mreg.errors import RegistryError, UsageError, VersionConflict
from mreg.repo.git import Tag
from mreg.repo.versions import (
    ASSIGN,
    DEPRECATE,
    DEREGISTER,
    REGISTER,
    UNASSIGN,
    VERSION,
    check_tag_name,
    parse_tag,
    version_key,
)

if TYPE_CHECKING:
    from mreg.repo import Repo

DEPRECATED = "deprecated"


@dataclass(frozen=True)
class StageEvent:
    stage: str
    number: int | None  # None for GTO's simple form, NAME#STAGE
    assigned: bool
    commit: str
    tag: str
    date: str = ""

    def order(self) -> tuple[datetime, int]:
        """Tag date first (GTO's order), then the counter (tags made within one second)."""
        when = datetime.fromisoformat(self.date) if self.date else datetime.min
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when, self.number or 0


@dataclass
class ModelHistory:
    """Every registry tag of one model."""

    name: str
    registered: dict[str, Tag] = field(default_factory=dict)
    removed: set[str] = field(default_factory=set)
    stage_events: list[StageEvent] = field(default_factory=list)
    deprecated: bool = False
    last_number: int = 0  # the highest counter of any of its tags

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
        """Stage -> version: per stage, of the versions assigned and not taken out since,
        the highest (GTO's rule; mreg's ``assign`` takes the previous one out)."""
        holders: dict[str, list[str]] = {}
        for event in sorted(self.stage_events, key=StageEvent.order):
            version = self.version_at(event.commit)
            if version is None:
                continue
            stage = holders.setdefault(event.stage, [])
            if version in stage:
                stage.remove(version)
            if event.assigned:
                stage.append(version)
        # GTO's reading: of the versions in a stage, the highest (mreg keeps one in each).
        return {
            stage: max(versions, key=version_key)
            for stage, versions in sorted(holders.items())
            if versions
        }

    def stages_of(self, version: str) -> tuple[str, ...]:
        return tuple(s for s, v in self.current_stages().items() if v == version)

    def next_number(self) -> int:
        """The counter of the next tag (GTO's: one more than any counter of the artifact)."""
        return self.last_number + 1


def read_histories(repo: Repo, name: str = "") -> dict[str, ModelHistory]:
    """The history of every model with registry tags (of ``name`` only, when given)."""
    histories: dict[str, ModelHistory] = {}
    for tag in repo.git.tags(name):
        _record(histories, tag)
    if name:
        return {name: histories.get(name, ModelHistory(name))}
    return dict(sorted(histories.items()))


def _record(histories: dict[str, ModelHistory], tag: Tag) -> None:
    parsed = parse_tag(tag.name)
    if parsed is None:
        return
    history = histories.setdefault(parsed.name, ModelHistory(parsed.name))
    history.last_number = max(history.last_number, parsed.number or 0)
    if parsed.action == REGISTER:
        history.registered[parsed.version] = tag
    elif parsed.action == DEREGISTER:
        history.removed.add(parsed.version)
    elif parsed.action in (ASSIGN, UNASSIGN):
        assigned = parsed.action == ASSIGN
        history.stage_events.append(
            StageEvent(parsed.stage, parsed.number, assigned, tag.commit, tag.name, tag.date)
        )
    elif parsed.action == DEPRECATE:
        history.deprecated = True


def check_model_name(name: str) -> str:
    """``name`` if GTO can read it in a tag; RegistryError (a ValueError) says why not."""
    try:
        return check_tag_name(name)
    except UsageError as error:
        raise RegistryError(str(error), hint=error.hint) from None


def normalize_version(version: str) -> str:
    """``1.0.0`` or ``v1.0.0`` as ``v1.0.0``; RegistryError for anything else."""
    text = str(version).strip()
    text = text if text.startswith("v") else f"v{text}"
    if not VERSION.match(text):
        raise RegistryError(
            f"'{version}' is not a valid version",
            hint="use MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], for example 1.2.0 or v2.0.0-rc.1",
        )
    return text


def is_version(text: str) -> bool:
    return bool(VERSION.match(text if text.startswith("v") else f"v{text}"))


def bump_patch(history: ModelHistory) -> str:
    """The next version after every version ever registered (v0.1.0 for the first)."""
    every = history.all_versions()
    if not every:
        return "v0.1.0"
    major, minor, patch = version_key(every[-1])[:3]
    return f"v{major}.{minor}.{patch + 1}"


def choose_version(history: ModelHistory, version: str | None) -> str:
    """``version`` normalised, or the next patch; RegistryError when it was ever registered
    (removed versions are never reused)."""
    chosen = normalize_version(version) if version is not None else bump_patch(history)
    if chosen in history.registered:
        removed = " (removed, and versions are never reused)" if chosen in history.removed else ""
        raise VersionConflict(
            f"{history.name} {chosen} is already registered{removed}",
            hint=f"pass another version, or none for {bump_patch(history)}",
        )
    return chosen
