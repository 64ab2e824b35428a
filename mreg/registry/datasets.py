"""Dataset versions, registered and staged the way model versions are.

A registered dataset version is the commit that holds its manifest, tagged ``NAME@vX.Y.Z``;
stage moves, removal and deprecation are the same GTO tags (``mreg.repo.versions``), read into
the same histories (``tags``), resolved by the same rules (``resolution``) and written by the
same code (``stages``) as a model's. What differs is how a version is made (``mreg add`` and a
commit of its manifest, not a saved model) and what its entry says (rows, columns, format).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import mreg.repo.manifest
from mreg.errors import ArtifactNotFound, RegistryError
from mreg.registry import catalog, kinds, resolution, search
from mreg.registry.entries import DatasetEntry
from mreg.registry.tags import ModelHistory, check_model_name, choose_version
from mreg.repo.index import ManifestFacts, facts_of

if TYPE_CHECKING:
    from pathlib import Path

    from mreg.repo import Repo


def history(repo: Repo, name: str, folder: Path, must_exist: bool = True) -> ModelHistory:
    """Every registry tag of dataset ``name``; RegistryError if ``name`` is a model's."""
    return resolution.history_of(repo, name, folder, must_exist, kind=kinds.DATASET)


def register(
    repo: Repo,
    folder: Path,
    name: str,
    source: Path | None,
    version: str | None,
    meta: dict[str, str],
) -> DatasetEntry:
    """Track ``source`` as dataset ``name`` (``mreg add``; without ``source``, the dataset the
    work tree tracks by that name), commit its manifest and tag ``NAME@VERSION`` there.

    Without ``version``, the last version's patch is bumped (``v0.1.0`` first). RegistryError
    for a name that is a model's, or a version already registered (versions are never
    reused). ``meta`` is merged into the manifest's ``[meta]``."""
    check_model_name(name)
    with repo.lock.held():
        chosen = choose_version(history(repo, name, folder, must_exist=False), version)
        rel = _track(repo, name, source, meta)
        beside = rel.rpartition("/")[0] + "/.gitignore" if "/" in rel else ".gitignore"
        ignore = (beside,) if (repo.root / beside).exists() else ()
        commit = repo.git.commit_paths(rel, f"Register {name} {chosen}", *ignore)
        message = f"Registering artifact {name} version {chosen}"
        repo.git.create_tag(f"{name}@{chosen}", message, rev=commit)
    return entry(repo, history(repo, name, folder), chosen, commit)


def _track(repo: Repo, name: str, source: Path | None, meta: dict[str, str]) -> str:
    """The manifest (relative path) of dataset ``name`` as it is to be committed."""
    if source is not None:
        return repo.add(source, name=name, kind=kinds.DATASET, meta=meta).manifest_path
    found = repo.lookup(name)
    if found is None:
        raise ArtifactNotFound(
            f"no dataset named '{name}' in the work tree",
            hint=f"give its path, or track it first: `mreg add PATH --name {name}`",
        )
    rel, manifest = found
    if manifest.kind != kinds.DATASET:
        raise kinds.wrong_kind(name, manifest.kind, kinds.DATASET)
    if meta:
        mreg.repo.manifest.write(repo.root / rel, manifest.with_meta(meta))
    return rel


def entry(repo: Repo, found: ModelHistory, version: str, commit: str) -> DatasetEntry:
    """The entry of ``version`` (registered at ``commit``), its manifest read from git."""
    place = repo.lookup(found.name, commit)
    if place is None:
        raise RegistryError(f"'{found.name}' has no manifest at {commit[:12]}")
    rel, manifest = place
    if manifest.kind != kinds.DATASET:
        raise kinds.wrong_kind(found.name, manifest.kind, kinds.DATASET)
    return entry_of(found, version, commit, rel, facts_of(manifest))


def entry_of(
    found: ModelHistory, version: str, commit: str, rel: str, facts: ManifestFacts
) -> DatasetEntry:
    """The entry of ``version`` from what its manifest at ``rel`` says (``facts``)."""
    tag = found.registered.get(version)
    return DatasetEntry(
        name=found.name,
        version=version,
        tag=tag.name if tag else "",
        commit=commit,
        registered_at=tag.date if tag else "",
        manifest_path=rel,
        stages=found.stages_of(version),
        deprecated=found.deprecated,
        rows=facts.rows,
        columns=facts.columns,
        format=facts.source_format,
        size=facts.size,
        tags=_tags(facts.meta.get("tags", "")),
        meta=dict(facts.meta),
    )


def candidates(
    registered: catalog.Registered,
) -> dict[str, list[search.Candidate[DatasetEntry]]]:
    """Every active version of every dataset of ``registered`` (``catalog.of_kind``), oldest
    first, from the facts the index read."""
    found: dict[str, list[search.Candidate[DatasetEntry]]] = {}
    for name, versions in registered.histories.items():
        for version in versions.versions():
            place = registered.facts(versions, version)
            if place is None:
                continue
            commit = versions.registered[version].commit
            version_entry = entry_of(versions, version, commit, *place)
            found.setdefault(name, []).append(search.Candidate(version_entry, kinds.DATASET))
    return found


def _tags(text: str) -> tuple[str, ...]:
    """``[meta] tags``: a JSON list as the registry writes it, or ``a,b`` as typed."""
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, list):
        return tuple(str(t) for t in parsed)
    return tuple(t.strip() for t in text.split(",") if t.strip())
