"""Counts over the registry: models, versions, stages, data size, by format and by type."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.registry import catalog, kinds
from mreg.registry.seed_view import SeedMapping
from mreg.repo.index import facts_of

if TYPE_CHECKING:
    from mreg.repo import Repo


@dataclass(frozen=True)
class RegistryStats(SeedMapping):
    """What ``mreg stats`` shows. ``data_size`` counts each distinct data file once. Also a
    mapping with the seed's keys, where a "model" is one registered version: ``total_models``,
    ``unique_models``, ``total_size_mb``, ``total_parameters``, ``formats``, ``model_types``."""

    models: int = 0
    versions: int = 0
    removed_versions: int = 0
    deprecated_models: int = 0
    staged_versions: int = 0
    stages: dict[str, int] = field(default_factory=dict)
    data_size: int = 0
    parameters: int = 0
    by_format: dict[str, int] = field(default_factory=dict)
    by_type: dict[str, int] = field(default_factory=dict)

    def seed_view(self) -> dict[str, Any]:
        return {
            "total_models": self.versions,
            "unique_models": self.models,
            "total_size_mb": round(self.data_size / 2**20, 3),
            "total_parameters": self.parameters,
            "formats": self.by_format,
            "model_types": self.by_type,
        }


def stats(repo: Repo, folder: Path) -> RegistryStats:
    """Counts over every model in ``repo`` (``folder``: the registry folder) with a version not
    removed (versions not removed only); datasets tagged ``NAME@vX.Y.Z`` are not counted."""
    models = versions = removed = deprecated = parameters = 0
    stages: Counter[str] = Counter()
    staged: set[tuple[str, str]] = set()
    formats: Counter[str] = Counter()
    types: Counter[str] = Counter()
    sizes: dict[str, int] = {}
    for history in catalog.registered(repo, folder).histories.values():
        chosen = history.versions()
        removed += len(set(history.registered) & set(history.removed))
        if not chosen:
            continue
        models += 1
        deprecated += history.deprecated
        for stage, version in history.current_stages().items():
            stages[stage] += 1
            staged.add((history.name, version))
        for version in chosen:
            versions += 1
            commit = history.registered[version].commit
            rel, manifest = kinds.manifest_at(repo, history.name, commit)
            entry = catalog.entry_of(history, version, commit, rel, facts_of(manifest))
            formats[entry.model_format.value] += 1
            types[entry.model_type.value] += 1
            parameters += entry.metadata.parameters_count
            sizes.update({f.path: f.size for f in manifest.files})
    return RegistryStats(
        models=models,
        versions=versions,
        removed_versions=removed,
        deprecated_models=deprecated,
        staged_versions=len(staged),
        stages=dict(sorted(stages.items())),
        data_size=sum(sizes.values()),
        parameters=parameters,
        by_format=dict(sorted(formats.items())),
        by_type=dict(sorted(types.items())),
    )
