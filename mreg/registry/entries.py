"""What the registry answers with: one ``ModelEntry`` or ``DatasetEntry`` per registered
version, and a ``ModelSummary`` per model."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mreg.errors import RegistryError
from mreg.registry import integrity

if TYPE_CHECKING:
    from mreg.registry.metadata import ModelMetadata
    from mreg.registry.types import ModelFormat, ModelType
    from mreg.repo import Repo


@dataclass(frozen=True)
class ModelEntry:
    """One registered version: where git keeps it, and what its manifest says about it."""

    name: str
    version: str
    tag: str
    commit: str
    registered_at: str
    manifest_path: str
    stages: tuple[str, ...]
    deprecated: bool
    metadata: ModelMetadata
    # The work tree of the registry that gave this entry (for the integrity methods below).
    root: str = field(default="", repr=False, compare=False)

    def verify_integrity(self) -> bool:
        """Whether every data file of this version is in the cache with its recorded sha256
        (the seed's ``entry.verify_integrity()``)."""
        return integrity.version_intact(self._repo(), self.name, self.commit)

    def calculate_checksum(self) -> dict[str, str]:
        """``{data file: sha256}`` of this version's data files, hashed again now (``""`` for
        one missing from the cache)."""
        return integrity.version_checksums(self._repo(), self.name, self.commit)

    def _repo(self) -> Repo:
        from mreg.repo import Repo

        if not self.root:
            raise RegistryError(
                f"this entry of {self.name} {self.version} was built without its registry",
                hint="get it from ModelRegistry.get_model_info or list_models",
            )
        return Repo(self.root)

    @property
    def model_format(self) -> ModelFormat:
        return self.metadata.format

    @property
    def model_type(self) -> ModelType:
        return self.metadata.model_type


@dataclass(frozen=True)
class ModelSummary:
    """One model at a glance: what ``mreg models`` shows."""

    name: str
    latest: str | None
    versions: tuple[str, ...]
    stages: dict[str, str]
    metrics: dict[str, float]
    model_format: str
    model_type: str
    deprecated: bool


@dataclass(frozen=True)
class DatasetEntry:
    """One registered dataset version: where git keeps it, and what its manifest says (rows,
    column names, source format, size, tags and ``[meta]``)."""

    name: str
    version: str
    tag: str
    commit: str
    registered_at: str
    manifest_path: str
    stages: tuple[str, ...]
    deprecated: bool
    rows: int
    columns: tuple[str, ...]
    format: str
    size: int
    tags: tuple[str, ...]
    meta: dict[str, str]
    kind: str = "dataset"


def summaries_of(entries: list[ModelEntry]) -> list[ModelSummary]:
    """What ``models()`` says, from every version not removed (``list_models``): for a client,
    which gets entries over the wire."""
    by_name: dict[str, list[ModelEntry]] = {}
    for entry in entries:
        by_name.setdefault(entry.name, []).append(entry)
    found = []
    for name, versions in sorted(by_name.items()):
        newest = versions[-1]  # list_models gives each model's versions oldest first
        stages = {stage: e.version for e in versions for stage in e.stages}
        found.append(
            ModelSummary(
                name=name,
                latest=newest.version,
                versions=tuple(e.version for e in versions),
                stages=dict(sorted(stages.items())),
                metrics=newest.metadata.performance_metrics,
                model_format=newest.model_format.value,
                model_type=newest.model_type.value,
                deprecated=newest.deprecated,
            )
        )
    return found
