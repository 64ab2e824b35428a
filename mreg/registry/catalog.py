"""What is registered, as entries: one ``ModelEntry`` per version, read from its tag and its
manifest; the filters of ``list_models``; the summaries of ``mreg models``; and the candidates
``search`` matches, read in batch through the search index."""

from __future__ import annotations

from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import RegistryError
from mreg.registry import metadata as fields
from mreg.registry import search as searching
from mreg.registry.index import RegistryIndex
from mreg.registry.metadata import ManifestFacts, ModelMetadata, facts_of
from mreg.registry.tags import ModelHistory, read_histories
from mreg.registry.types import ModelEntry, ModelSummary

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest

ENTRY_FILTERS = ("name", "version", "stage", "deprecated")


def manifest_at(repo: Repo, name: str, commit: str) -> tuple[str, Manifest]:
    """``(manifest path, manifest)`` of ``name`` in ``commit``; RegistryError if it has none."""
    found = repo.lookup(name, commit)
    if found is None:
        raise RegistryError(f"'{name}' has no manifest at {commit[:12]}")
    return found


def entry(repo: Repo, history: ModelHistory, version: str, commit: str) -> ModelEntry:
    """The entry of ``version`` (registered at ``commit``), its manifest read from git."""
    rel, manifest = manifest_at(repo, history.name, commit)
    return entry_of(history, version, commit, rel, facts_of(manifest))


def entry_of(
    history: ModelHistory, version: str, commit: str, rel: str, facts: ManifestFacts
) -> ModelEntry:
    """The entry of ``version`` from what its manifest at ``rel`` says (``facts``)."""
    tag = history.registered.get(version)
    return ModelEntry(
        name=history.name,
        version=version,
        tag=tag.name if tag else "",
        commit=commit,
        registered_at=tag.date if tag else "",
        manifest_path=rel,
        stages=history.stages_of(version),
        deprecated=history.deprecated,
        metadata=fields.from_facts(facts, version),
    )


def check_filters(filters: dict[str, Any]) -> None:
    """RegistryError naming any filter that is neither an entry nor a metadata field."""
    known = {f.name for f in dataclass_fields(ModelMetadata)} | set(ENTRY_FILTERS)
    unknown = sorted(set(filters) - known)
    if unknown:
        raise RegistryError(
            f"unknown filter {', '.join(unknown)}", hint=f"filters: {', '.join(sorted(known))}"
        )


def matches(found: ModelEntry, key: str, wanted: Any) -> bool:
    """Whether ``found`` has ``wanted`` under ``key`` (membership for list fields)."""
    if key == "stage":
        return str(wanted) in found.stages
    if key in ENTRY_FILTERS:
        return str(getattr(found, key)) == str(wanted)
    value = getattr(found.metadata, key)
    if isinstance(value, tuple) and not isinstance(wanted, list | tuple):
        return str(wanted) in value
    return str(value) == str(wanted)


def summary(repo: Repo, history: ModelHistory) -> ModelSummary | None:
    """One model at a glance, or None when every version was removed."""
    latest = history.latest()
    if latest is None:
        return None
    newest = entry(repo, history, latest, history.registered[latest].commit)
    return ModelSummary(
        name=history.name,
        latest=latest,
        versions=tuple(history.versions()),
        stages=history.current_stages(),
        metrics=newest.metadata.performance_metrics,
        model_format=newest.model_format.value,
        model_type=newest.model_type.value,
        deprecated=history.deprecated,
    )


def candidates(repo: Repo, folder: Path) -> dict[str, list[searching.Candidate]]:
    """Every active version of every model, oldest first, read through the search index;
    ``folder`` is the registry folder, where each model's manifest is looked for first."""
    histories = read_histories(repo)
    wanted = [(h.name, h.registered[v].commit) for h in histories.values() for v in h.versions()]
    index = RegistryIndex(repo)
    folders = {name: repo.relpath(folder / name) for name in histories}
    known = index.lookup(wanted, folders)
    found: dict[str, list[searching.Candidate]] = {}
    for history in histories.values():
        for version in history.versions():
            commit = history.registered[version].commit
            place = known.get(f"{commit}:{history.name}")
            rel, facts = place or _read_facts(repo, index, history.name, commit)
            version_entry = entry_of(history, version, commit, rel, facts)
            found.setdefault(history.name, []).append(
                searching.Candidate(version_entry, facts.kind)
            )
    index.save()
    return found


def _read_facts(
    repo: Repo, index: RegistryIndex, name: str, commit: str
) -> tuple[str, ManifestFacts]:
    """The slow way, for a manifest outside the registry folder: parse the commit's tree."""
    rel, manifest = manifest_at(repo, name, commit)
    facts = facts_of(manifest)
    index.remember(name, commit, rel, facts)
    return rel, facts
