"""What is registered, as entries: one ``ModelEntry`` per version, read from its tag and its
manifest; the filters of ``list_models``; the summaries of ``mreg models``; and the candidates
``search`` matches, read in batch through the search index.

Datasets are versioned with the same ``NAME@vX.Y.Z`` tags (GTO's convention, ``mreg tag``), so
``registered`` reads the kind of every tagged manifest through the index and keeps models only:
every listing, search, count and check of the registry starts there."""

from __future__ import annotations

from dataclasses import dataclass, replace
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import RegistryError
from mreg.registry import search
from mreg.registry.entries import ModelEntry, ModelSummary
from mreg.registry.kinds import MODEL, manifest_at
from mreg.registry.metadata import ModelMetadata, from_facts
from mreg.registry.tags import ModelHistory, read_histories
from mreg.registry.types import ModelType
from mreg.repo.index import ManifestFacts, ManifestIndex, facts_of

if TYPE_CHECKING:
    from mreg.repo import Repo

ENTRY_FILTERS = ("name", "version", "stage", "deprecated")


@dataclass(frozen=True)
class Registered:
    """The registry's models: every history with its dataset versions left out, and what the
    index read of each tagged manifest (``COMMIT:NAME`` -> manifest path, facts)."""

    histories: dict[str, ModelHistory]
    manifests: dict[str, tuple[str, ManifestFacts]]

    def facts(self, history: ModelHistory, version: str) -> tuple[str, ManifestFacts] | None:
        return self.manifests.get(f"{history.registered[version].commit}:{history.name}")


def registered(
    repo: Repo,
    folder: Path,
    histories: dict[str, ModelHistory] | None = None,
    save: bool = True,
    kind: str = MODEL,
) -> Registered:
    """The models (or datasets, by ``kind``) among ``histories`` (default: every name with
    registry tags). A version whose manifest at its tagged commit is of another kind is left
    out, and a name left with no version is not of this kind; a version whose manifest cannot
    be read stays among the models (listing it says why). The manifests are read through the
    index in batch (``folder``: the registry folder, where each model's manifest is looked for
    first), and the index is saved when ``save``."""
    histories = read_histories(repo) if histories is None else histories
    return of_kind(histories, read_manifests(repo, folder, histories, save), kind)


def read_manifests(
    repo: Repo, folder: Path, histories: dict[str, ModelHistory], save: bool = True
) -> dict[str, tuple[str, ManifestFacts]]:
    """What the index says of the manifest of every registered version of ``histories``
    (``COMMIT:NAME`` -> manifest path, facts), in batch."""
    wanted = [(h.name, tag.commit) for h in histories.values() for tag in h.registered.values()]
    index = ManifestIndex(repo)
    known = index.lookup(wanted, {name: repo.relpath(folder / name) for name in histories})
    if save:
        index.save()
    return known


def of_kind(
    histories: dict[str, ModelHistory], known: dict[str, tuple[str, ManifestFacts]], kind: str
) -> Registered:
    """The histories of ``kind`` (``registered``) from manifests ``read_manifests`` read."""
    accepted = (MODEL, None) if kind == MODEL else (kind,)
    chosen = {}
    for history in histories.values():
        kept = {
            version: tag
            for version, tag in history.registered.items()
            if _kind(known.get(f"{tag.commit}:{history.name}")) in accepted
        }
        if kept or not history.registered:
            chosen[history.name] = replace(
                history,
                registered=kept,
                removed=set(history.removed),
                stage_events=list(history.stage_events),
            )
    return Registered(chosen, known)


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
        metadata=from_facts(facts, version),
    )


def list_entries(
    repo: Repo, folder: Path, model_type: ModelType | str | None, filters: dict[str, Any]
) -> list[ModelEntry]:
    """Every registered version not removed of ``model_type`` (any, for None) whose entry or
    metadata fields match ``filters`` (``matches``), by name then version."""
    check_filters(filters)
    wanted_type = ModelType.parse(model_type) if model_type else None
    entries = []
    for found in candidates(repo, folder).values():
        for candidate in found:
            entry = candidate.entry
            if wanted_type and entry.model_type != wanted_type:
                continue
            if all(matches(entry, k, v) for k, v in filters.items()):
                entries.append(entry)
    return entries


def search_entries(repo: Repo, folder: Path, query: str, latest: bool) -> list[ModelEntry]:
    """Versions not removed that match every term of ``query`` (``mreg.registry.search``), by
    name then version; with ``latest``, only each model's newest matching version."""
    terms = search.parse(query)
    found: list[ModelEntry] = []
    for versions in candidates(repo, folder).values():
        chosen = [c.entry for c in versions if search.matches(terms, c)]
        found.extend(chosen[-1:] if latest else chosen)
    return found


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


def summary(
    repo: Repo, history: ModelHistory, known: Registered | None = None
) -> ModelSummary | None:
    """One model at a glance, or None when every version was removed; its newest manifest as
    ``known`` read it, when it did."""
    latest = history.latest()
    if latest is None:
        return None
    commit = history.registered[latest].commit
    place = known.facts(history, latest) if known else None
    newest = (
        entry_of(history, latest, commit, *place) if place else entry(repo, history, latest, commit)
    )
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


def candidates(
    repo: Repo, folder: Path, models: Registered | None = None
) -> dict[str, list[search.Candidate[ModelEntry]]]:
    """Every active version of every model (of ``models``), oldest first, read through the
    search index; ``folder`` is the registry folder, where each model's manifest is looked for
    first."""
    models = registered(repo, folder) if models is None else models
    found: dict[str, list[search.Candidate[ModelEntry]]] = {}
    for history in models.histories.values():
        for version in history.versions():
            commit = history.registered[version].commit
            place = models.facts(history, version)
            if place is None:  # no readable manifest: the slow way, which says why
                version_entry = entry(repo, history, version, commit)
                kind = MODEL
            else:
                version_entry = entry_of(history, version, commit, *place)
                kind = place[1].kind
            found.setdefault(history.name, []).append(search.Candidate(version_entry, kind))
    return found


def _kind(place: tuple[str, ManifestFacts] | None) -> str | None:
    return place[1].kind if place else None
