"""``ModelRegistry``: one facade over models registered in an mreg repository.

Every version is a commit and a ``NAME@vX.Y.Z`` tag, every stage move a ``NAME#STAGE#N`` tag, so
the registry's whole state is in git: clone the repository, ``mreg pull``, and it is all there.
"""

from __future__ import annotations

import os
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import GitError, IntegrityError, ModelIntegrityError, RegistryError
from mreg.registry import export as exporting
from mreg.registry import metadata as fields
from mreg.registry import register as registering
from mreg.registry import search as searching
from mreg.registry import stages as staging
from mreg.registry import stats as counting
from mreg.registry import validate as validating
from mreg.registry.index import RegistryIndex
from mreg.registry.loaders import StoredModel, default_loaders
from mreg.registry.metadata import ManifestFacts, ModelMetadata, facts_of
from mreg.registry.tags import ModelHistory, is_version, normalize_version, read_histories
from mreg.registry.types import ModelEntry, ModelFormat, ModelSummary, ModelType
from mreg.repo import Repo
from mreg.repo.manifest import Manifest

if TYPE_CHECKING:
    from mreg.storage.transfer import TransferResult

ENV_PATH = "MODEL_REGISTRY_PATH"
DEFAULT_FOLDER = "models"
_ENTRY_FILTERS = ("name", "version", "stage", "deprecated")


class ModelRegistry:
    """Models registered in the mreg repository at ``path``.

    ``path`` defaults to ``$MODEL_REGISTRY_PATH``, then the current directory. A path inside the
    repository (``ModelRegistry("./my_models")``) is where new models are written; otherwise
    ``[registry] path`` in ``.mreg/config.toml``, or ``models/``.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        chosen = Path(path or os.environ.get(ENV_PATH) or ".").resolve()
        existing = chosen
        while not existing.exists():
            existing = existing.parent
        self.repo = Repo(existing)
        configured = self.repo.config.shared.get("registry", {}).get("path", DEFAULT_FOLDER)
        explicit = path is not None or ENV_PATH in os.environ
        inside = explicit and chosen != self.repo.root
        self.folder = chosen if inside else self.repo.root / configured
        self.loaders: dict[ModelFormat, Any] = default_loaders()

    # -- registering ----------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        model: Any,
        model_format: ModelFormat | str | None = None,
        model_type: ModelType | str | None = None,
        version: str | None = None,
        *,
        init_kwargs: dict[str, Any] | None = None,
        model_class: str | None = None,
        **metadata: Any,
    ) -> ModelEntry:
        """Save ``model``, track it, commit it and tag ``NAME@VERSION``; returns the entry.

        ``model``: an ``nn.Module`` (its class and JSON ``init_kwargs`` are recorded so
        ``load_model`` can rebuild it), a state dict, an ONNX ``ModelProto``, or a path to
        weights. Without ``version``, the last version's patch is bumped (``v0.1.0`` first).
        RegistryError (a ValueError) for a duplicate or invalid version.
        """
        history = self._history(name, must_exist=False)
        request = registering.check_request(
            self.repo, history, name, model, model_format, model_type, version,
            init_kwargs, model_class, metadata,
        )  # fmt: skip
        loader = self._loader(request.format)
        found = self.repo.lookup(name)
        folder = self.folder / name
        if found is not None and Path(found[0]).parent != Path("."):
            folder = self.repo.root / Path(found[0]).parent
        commit = registering.register(self.repo, request, loader, folder)
        self.repo.git.create_tag(
            f"{name}@{request.version}",
            f"Registering artifact {name} version {request.version}",
            rev=commit,
        )
        return self.get_model_info(name, request.version)

    # -- reading --------------------------------------------------------------------------

    def load_model(
        self,
        name: str,
        version: str = "latest",
        device: str = "cpu",
        weights_only: bool = True,
        **kwargs: Any,
    ) -> tuple[Any, Any | None]:
        """``(model, tokenizer)`` of one version: ``latest``, ``vX.Y.Z``, a stage (``prod`` or
        ``#prod``) or a git revision. Every data file is checked against its sha256 first
        (ModelIntegrityError on a mismatch). PyTorch weights never pass through pickle, so
        ``weights_only`` is always in effect; ONNX gives an onnxruntime session
        (``return_proto=True``: the ModelProto)."""
        label, commit = self._resolve(name, version)
        _, manifest = self._manifest(name, commit)
        meta = fields.from_manifest(manifest, label)
        loader = self._loader(meta.format)
        self._check_integrity(manifest, commit)
        stored = StoredModel(self.repo, commit, manifest, meta)
        try:
            if hasattr(loader, "load_stored"):
                return loader.load_stored(stored, device=device, **kwargs), None
            with self.repo.cache.staging() as folder:
                path = stored.restore_into(folder)
                return loader.load(str(path), device=device, **kwargs), None
        except ModelIntegrityError:
            raise
        except IntegrityError as error:
            raise ModelIntegrityError(str(error), hint=error.hint) from None

    def get_model_info(self, name: str, version: str = "latest") -> ModelEntry:
        """The entry of one version (same ``version`` forms as ``load_model``)."""
        label, commit = self._resolve(name, version)
        return self._entry(self._history(name), label, commit)

    def list_models(
        self, model_type: ModelType | str | None = None, **filters: Any
    ) -> list[ModelEntry]:
        """Every registered version not removed, by name then version. ``filters`` compare
        entry or metadata fields: ``name``, ``stage``, ``tags`` (membership), ``author``..."""
        known = {f.name for f in dataclass_fields(ModelMetadata)} | set(_ENTRY_FILTERS)
        unknown = sorted(set(filters) - known)
        if unknown:
            raise RegistryError(
                f"unknown filter {', '.join(unknown)}", hint=f"filters: {', '.join(sorted(known))}"
            )
        wanted_type = ModelType.parse(model_type) if model_type else None
        entries = []
        for history in read_histories(self.repo).values():
            for version in history.versions():
                entry = self._entry(history, version, history.registered[version].commit)
                if wanted_type and entry.model_type != wanted_type:
                    continue
                if all(_matches(entry, k, v) for k, v in filters.items()):
                    entries.append(entry)
        return entries

    def search(self, query: str, latest: bool = False) -> list[ModelEntry]:
        """Versions not removed that match every term of ``query`` (``resnet* type:vision
        tag:cv stage:prod accuracy>=0.9``; see ``mreg.registry.search``), by name then version;
        with ``latest``, only each model's newest matching version. RegistryError (a ValueError)
        names a malformed term. Manifests come from git in two batch reads, cached per blob."""
        terms = searching.parse(query)
        found = []
        for candidates in self._candidates().values():
            chosen = [c.entry for c in candidates if searching.matches(terms, c)]
            found.extend(chosen[-1:] if latest else chosen)
        return found

    def models(self) -> list[ModelSummary]:
        """One summary per model with a version not removed."""
        found = []
        for history in read_histories(self.repo).values():
            latest = history.latest()
            if latest is None:
                continue
            entry = self._entry(history, latest, history.registered[latest].commit)
            found.append(
                ModelSummary(
                    name=history.name,
                    latest=latest,
                    versions=tuple(history.versions()),
                    stages=history.current_stages(),
                    metrics=entry.metadata.performance_metrics,
                    model_format=entry.model_format.value,
                    model_type=entry.model_type.value,
                    deprecated=history.deprecated,
                )
            )
        return found

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name`` not removed, oldest first."""
        return self._history(name).versions()

    def push(self, remote: str | None = None, jobs: int = 8) -> TransferResult:
        """Upload the data of every registered version (``mreg push`` sends only the versions
        in the work tree)."""
        return self.repo.push(remote=remote, jobs=jobs, all_refs=True)

    # -- export, validation, statistics --------------------------------------------------

    def export_model(
        self,
        name: str,
        version: str = "latest",
        export_path: str | Path = ".",
        export_format: str = "safetensors",
        example_input: Any = None,
    ) -> Path:
        """Write one version as ``safetensors``, ``pth`` or ``onnx`` (ONNX needs ``example_input``
        or a recorded ``input_shape``); returns the path written."""
        return exporting.export_model(
            self, name, version, export_path, export_format, example_input
        )

    def validate_registry(self, load: bool = True) -> validating.ValidationReport:
        """Every version not removed: cached files present, sha256 re-hashed, loadable."""
        return validating.validate(self, load=load)

    def stats(self) -> counting.RegistryStats:
        """Counts of models, versions, stages, data size, by format and by type."""
        return counting.stats(self)

    # -- lifecycle ------------------------------------------------------------------------

    def remove_model(self, name: str, version: str | None = None) -> list[str]:
        """Deregister one version (every version without ``version``): GTO's ``NAME@vX.Y.Z!``
        tags. The data stay in the cache and on remotes until ``mreg gc``. Returns the tags."""
        history = self._history(name)
        if version is None:
            chosen = history.versions()
        else:
            chosen = [normalize_version(version)]
            self._check_active(history, chosen[0])
        tags = []
        for v in chosen:
            tag = f"{name}@{v}!"
            message = f"Deregistering artifact {name} version {v}"
            self.repo.git.create_tag(tag, message, rev=history.registered[v].commit)
            tags.append(tag)
        return tags

    def stage(self, name: str, version: str, stage: str) -> str:
        """Put ``version`` in ``stage`` (tag ``NAME#STAGE#N``); returns the tag."""
        history = self._history(name)
        chosen = normalize_version(version)
        self._check_active(history, chosen)
        return staging.assign(self.repo, history, chosen, stage)

    def unstage(self, name: str, stage: str) -> str:
        """Take the version now in ``stage`` out of it (tag ``NAME#STAGE!#N``)."""
        return staging.unassign(self.repo, self._history(name), stage)

    def deprecate(self, name: str) -> str:
        """Mark the whole model deprecated (tag ``NAME@deprecated``)."""
        return staging.deprecate(self.repo, self._history(name))

    def stages(self, name: str) -> dict[str, str]:
        """Stage -> the version now in it."""
        return self._history(name).current_stages()

    # -- internals ------------------------------------------------------------------------

    def _loader(self, fmt: ModelFormat) -> Any:
        loader = self.loaders.get(fmt)
        if loader is None:
            raise RegistryError(
                f"no loader for format '{fmt.value}'",
                hint="plug one in: registry.loaders[fmt] = MyLoader()",
            )
        return loader

    def _history(self, name: str, must_exist: bool = True) -> ModelHistory:
        history = read_histories(self.repo, name)[name]
        if must_exist and not history.registered:
            raise RegistryError(f"no model named '{name}' is registered", hint="see `mreg models`")
        return history

    def _check_active(self, history: ModelHistory, version: str) -> None:
        if version not in history.registered:
            known = ", ".join(history.versions()) or "none"
            raise RegistryError(
                f"{history.name} has no version {version}", hint=f"versions: {known}"
            )
        if version in history.removed:
            raise RegistryError(f"{history.name} {version} was removed")

    def _resolve(self, name: str, version: str) -> tuple[str, str]:
        """(version label, commit) for ``latest``, ``vX.Y.Z``, a stage or a git revision."""
        history = self._history(name)
        text = str(version).strip()
        if text in ("", "latest"):
            latest = history.latest()
            if latest is None:
                raise RegistryError(f"every version of '{name}' was removed")
            return latest, history.registered[latest].commit
        if is_version(text):
            chosen = normalize_version(text)
            self._check_active(history, chosen)
            return chosen, history.registered[chosen].commit
        stage = text.removeprefix("#")
        current = history.current_stages()
        if stage in current:
            return current[stage], history.registered[current[stage]].commit
        known_stages = set(staging.allowed_stages(self.repo) or ())
        known_stages |= {e.stage for e in history.stage_events}
        if text.startswith("#") or stage in known_stages:
            raise RegistryError(f"no version of '{name}' is in stage '{stage}'")
        try:
            commit = self.repo.git.resolve(text)
        except GitError:
            raise RegistryError(
                f"'{text}' is not a version, stage or git revision of '{name}'",
                hint=f"versions: {', '.join(history.versions()) or 'none'}",
            ) from None
        return history.version_at(commit) or commit[:12], commit

    def _manifest(self, name: str, commit: str) -> tuple[str, Manifest]:
        found = self.repo.lookup(name, commit)
        if found is None:
            raise RegistryError(f"'{name}' has no manifest at {commit[:12]}")
        return found

    def _entry(self, history: ModelHistory, version: str, commit: str) -> ModelEntry:
        rel, manifest = self._manifest(history.name, commit)
        return _entry_of(history, version, commit, rel, facts_of(manifest))

    def _candidates(self) -> dict[str, list[searching.Candidate]]:
        """Every active version of every model, oldest first, read through the search index."""
        histories = read_histories(self.repo)
        wanted = [
            (h.name, h.registered[v].commit) for h in histories.values() for v in h.versions()
        ]
        index = RegistryIndex(self.repo)
        folders = {name: self.repo.relpath(self.folder / name) for name in histories}
        known = index.lookup(wanted, folders)
        candidates: dict[str, list[searching.Candidate]] = {}
        for history in histories.values():
            for version in history.versions():
                commit = history.registered[version].commit
                place = known.get(f"{commit}:{history.name}")
                rel, facts = place or self._manifest_facts(index, history.name, commit)
                entry = _entry_of(history, version, commit, rel, facts)
                candidates.setdefault(history.name, []).append(
                    searching.Candidate(entry, facts.kind)
                )
        index.save()
        return candidates

    def _manifest_facts(
        self, index: RegistryIndex, name: str, commit: str
    ) -> tuple[str, ManifestFacts]:
        """The slow way, for a manifest outside the registry folder: parse the commit's tree."""
        rel, manifest = self._manifest(name, commit)
        facts = facts_of(manifest)
        index.remember(name, commit, rel, facts)
        return rel, facts

    def _check_integrity(self, manifest: Manifest, commit: str) -> None:
        """sha256 of every cached data file of ``manifest``; missing ones are fetched (and
        checked on arrival) when the model is opened."""
        for entry in manifest.files:
            if not self.repo.cache.path(entry.path).exists():
                continue
            problem = self.repo.cache.verify(entry)
            if problem is not None:
                raise ModelIntegrityError(
                    f"{manifest.name} at {commit[:12]}: {entry.path} is {problem}",
                    hint=f"delete .mreg/cache/{entry.path} and run `mreg fetch {manifest.name}`",
                )


def _entry_of(
    history: ModelHistory, version: str, commit: str, rel: str, facts: ManifestFacts
) -> ModelEntry:
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


def _matches(entry: ModelEntry, key: str, wanted: Any) -> bool:
    if key == "stage":
        return str(wanted) in entry.stages
    if key in _ENTRY_FILTERS:
        return str(getattr(entry, key)) == str(wanted)
    value = getattr(entry.metadata, key)
    if isinstance(value, tuple) and not isinstance(wanted, list | tuple):
        return str(wanted) in value
    return str(value) == str(wanted)
