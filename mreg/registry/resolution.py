"""Which registered version a caller means: ``latest``, ``vX.Y.Z``, a stage (``prod`` or
``#prod``), or any git revision; and the ``NAME@VERSION`` / ``NAME#STAGE`` spellings of the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import GitError, ModelNotFound, UsageError
from mreg.registry import catalog, kinds, stages
from mreg.registry.tags import ModelHistory, is_version, normalize_version, read_histories

if TYPE_CHECKING:
    from mreg.repo import Repo


def split_spec(spec: str) -> tuple[str, str]:
    """``NAME``, ``NAME@VERSION`` or ``NAME#STAGE`` as ``(name, version)``, where version is
    ``latest``, the text after ``@``, or ``#STAGE``. UsageError for ``NAME#`` (no stage)."""
    if "@" in spec:
        name, _, version = spec.partition("@")
        return name, version or "latest"
    name, sep, stage = spec.partition("#")
    if sep and not stage:
        raise UsageError(f"'{spec}' names no stage", hint=f"write {name}#STAGE, e.g. {name}#prod")
    return name, f"#{stage}" if sep else "latest"


def history_of(
    repo: Repo, name: str, folder: Path, must_exist: bool = True, kind: str = kinds.MODEL
) -> ModelHistory:
    """Every registry tag of ``name`` (its model versions only, or its dataset versions by
    ``kind``); RegistryError (a ValueError) if ``name`` is of another kind (every version
    tagged is a dataset's, as ``mreg tag`` makes them, or a model's), or if it has no version
    and ``must_exist``. ``folder``: the registry folder, where its manifests are looked for
    first. What had to be read from git is added to the index, so that registering the
    1,001st version reads one manifest, not 1,001 (a read-only cache stays as it is)."""
    everything = read_histories(repo, name)
    known = catalog.registered(repo, folder, everything, kind=kind)
    if name not in known.histories:
        found = {facts.kind for _, facts in known.manifests.values()} - {kind}
        other = kinds.DATASET if kind == kinds.MODEL else kinds.MODEL
        raise kinds.wrong_kind(name, min(found, default=other), kind)
    history = known.histories[name]
    if must_exist and not history.registered:
        listing = "`mreg models`" if kind == kinds.MODEL else "`mreg search kind:dataset`"
        raise ModelNotFound(f"no {kind} named '{name}' is registered", hint=f"see {listing}")
    return history


def check_active(history: ModelHistory, version: str) -> None:
    """RegistryError unless ``version`` is registered and not removed."""
    if version not in history.registered:
        known = ", ".join(history.versions()) or "none"
        raise ModelNotFound(f"{history.name} has no version {version}", hint=f"versions: {known}")
    if version in history.removed:
        raise ModelNotFound(f"{history.name} {version} was removed")


def resolve(repo: Repo, history: ModelHistory, version: str) -> tuple[str, str]:
    """``(version label, commit)`` for ``latest``, ``vX.Y.Z``, a stage or a git revision.

    A word that is a stage the repository knows (allowed by config, or ever used by this model)
    and holds no version now is an error, never read as a git revision."""
    text = str(version).strip()
    if text in ("", "latest"):
        return _latest(history)
    if is_version(text):
        chosen = normalize_version(text)
        check_active(history, chosen)
        return chosen, history.registered[chosen].commit
    stage = text.removeprefix("#")
    current = history.current_stages()
    if stage in current:
        return current[stage], history.registered[current[stage]].commit
    if text.startswith("#") or stage in _known_stages(repo, history):
        raise ModelNotFound(
            f"no version of '{history.name}' is in stage '{stage}'",
            hint=f"stages of {history.name} now: {', '.join(current) or 'none'}; "
            f"assign one with `mreg stage {history.name} VERSION {stage}`",
        )
    return _revision(repo, history, text)


def _latest(history: ModelHistory) -> tuple[str, str]:
    latest = history.latest()
    if latest is None:
        raise ModelNotFound(f"every version of '{history.name}' was removed")
    return latest, history.registered[latest].commit


def _known_stages(repo: Repo, history: ModelHistory) -> set[str]:
    known = set(stages.allowed_stages(repo) or ())
    return known | {e.stage for e in history.stage_events}


def _revision(repo: Repo, history: ModelHistory, text: str) -> tuple[str, str]:
    try:
        commit = repo.git.resolve(text)
    except GitError:
        raise ModelNotFound(
            f"'{text}' is not a version, stage or git revision of '{history.name}'",
            hint=f"versions: {', '.join(history.versions()) or 'none'}",
        ) from None
    return history.version_at(commit) or commit[:12], commit
