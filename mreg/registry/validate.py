"""Checking every registered version: data files present in the cache, sha256 re-hashed, and
the model loadable."""

from __future__ import annotations

import gc
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import MregError, one_line
from mreg.registry import catalog, kinds
from mreg.registry.seed_view import SeedMapping

if TYPE_CHECKING:
    from mreg.repo import Repo

# ``ModelRegistry.load_model(name, version)``: ``(model, tokenizer)``.
LoadModel = Callable[[str, str], tuple[Any, Any]]


@dataclass(frozen=True)
class ValidationProblem:
    """One thing wrong with one version."""

    name: str
    version: str
    problem: str


@dataclass(frozen=True)
class ValidationReport(SeedMapping):
    """What ``validate_registry`` checked, and what it found wrong. Also a mapping with the
    seed's keys: a seed "model" is one registered version, so ``total_models`` counts versions,
    ``valid_models`` the valid ones, and ``errors`` are ``NAME@VERSION: problem`` lines."""

    models: int = 0
    versions: int = 0
    valid_versions: int = 0
    files: int = 0
    bytes_checked: int = 0
    errors: list[ValidationProblem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def seed_view(self) -> dict[str, Any]:
        return {
            "total_models": self.versions,
            "valid_models": self.valid_versions,
            "errors": [f"{e.name}@{e.version}: {e.problem}" for e in self.errors],
        }


def validate(repo: Repo, folder: Path, load: LoadModel | None) -> ValidationReport:
    """Every version not removed of the models in ``repo`` (``folder``: the registry folder):
    files in the cache, their sha256, then a ``load`` (none without one). Datasets tagged
    ``NAME@vX.Y.Z`` are not models, and are not checked."""
    models = versions = valid = files = checked = 0
    errors: list[ValidationProblem] = []
    for history in catalog.registered(repo, folder).histories.values():
        chosen = history.versions()
        if not chosen:
            continue
        models += 1
        for version in chosen:
            versions += 1
            found = _problems(repo, history.name, version, history.registered[version].commit)
            problems, counted, size = found
            files += counted
            checked += size
            if not problems and load is not None:
                problems = _load_problem(load, history.name, version)
            errors.extend(ValidationProblem(history.name, version, p) for p in problems)
            valid += not problems
    return ValidationReport(models, versions, valid, files, checked, errors)


def _problems(repo: Repo, name: str, version: str, commit: str) -> tuple[list[str], int, int]:
    try:
        _, manifest = kinds.manifest_at(repo, name, commit)
    except MregError as error:
        return [str(error)], 0, 0
    problems = []
    size = 0
    for entry in manifest.files:
        problem = repo.cache.verify(entry)
        if problem is None:
            size += entry.size
        else:
            problems.append(f"{entry.path} is {problem}")
    return problems, len(manifest.files), size


def _load_problem(load: LoadModel, name: str, version: str) -> list[str]:
    try:
        model, tokenizer = load(name, version)
    except Exception as error:  # any failure to load is a finding, not a crash
        return [f"does not load: {one_line(error)}"]
    del model, tokenizer
    gc.collect()
    return []
