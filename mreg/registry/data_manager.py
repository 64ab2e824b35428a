"""``DataManager``: one Python entry point for registered datasets and models.

The seed pipeline's ``DataManager`` searched, rolled back, registered and deleted datasets and
models alike; the seed registry's ``ModelRegistry`` held models only, and its users rely on
that (``list_models``, ``stats``, ``validate_registry`` and ``search`` count and return
models). So both seeds keep their class: ``ModelRegistry`` stays the models' registry, and
``DataManager`` is the one facade over both kinds. It holds a ``ModelRegistry`` (``.models``)
for every model operation and adds the dataset side; a verb that applies to both kinds
(``search``, ``stage``, ``rollback``, ``delete``, ``open``...) looks up which kind the name is
and runs the same code for either: a dataset's tags, stages and removals are the ones a
model gets, read and written by the registry's own lifecycle methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import MregError, RegistryError
from mreg.registry import catalog, datasets, kinds, search
from mreg.registry.entries import DatasetEntry, ModelEntry
from mreg.registry.metadata import to_meta
from mreg.registry.registry import ModelRegistry
from mreg.registry.resolution import split_spec
from mreg.registry.tags import ModelHistory, read_histories

if TYPE_CHECKING:
    import lance

    from mreg.repo import Target
    from mreg.storage.transfer import TransferResult

Entry = ModelEntry | DatasetEntry
KINDS = (kinds.MODEL, kinds.DATASET)


class _DatasetVersions(ModelRegistry):
    """The registry's lifecycle methods (``stage``, ``unstage``, ``deprecate``,
    ``remove_model``, ``versions``, ``stages`` and version resolution) run on the history they
    read; here it is a dataset's."""

    def _history(self, name: str, must_exist: bool = True) -> ModelHistory:
        return datasets.history(self.repo, name, self.folder, must_exist)


class DataManager:
    """Registered datasets and models of the mreg repository at ``path`` (as
    ``ModelRegistry(path, trusted_modules)`` finds it): register, list and search both kinds,
    stage, roll back, delete, open a version's rows, load a model."""

    def __init__(
        self, path: str | Path | None = None, trusted_modules: list[str] | None = None
    ) -> None:
        self.models = ModelRegistry(path, trusted_modules)
        self._datasets = _DatasetVersions(path, trusted_modules)
        self.repo = self.models.repo
        self.folder = self.models.folder

    # -- registering ----------------------------------------------------------------------

    def register(
        self,
        name: str,
        source: Any,
        version: str | None = None,
        *,
        kind: str | None = None,
        **metadata: Any,
    ) -> Entry:
        """Register ``source`` as the next version of ``name``: a dataset (a table file or
        folder, or None for the dataset the work tree tracks as ``name``) or a model
        (anything ``ModelRegistry.register_model`` takes). ``kind`` defaults to the name's
        kind, else to what ``source`` is."""
        chosen = kind or self._kind_of_source(name, source)
        _check_kind(chosen)
        if chosen == kinds.MODEL:
            return self.models.register_model(name, source, version=version, **metadata)
        return self.register_dataset(name, source, version, **metadata)

    def register_dataset(
        self,
        name: str,
        source: str | Path | None = None,
        version: str | None = None,
        **metadata: Any,
    ) -> DatasetEntry:
        """Track ``source`` (``mreg add``; default: the dataset tracked as ``name``), commit its
        manifest and tag ``NAME@VERSION`` (next patch by default); returns the entry.
        ``metadata`` (``tags=[...]``, ``description=...``, any field) goes into ``[meta]``.
        RegistryError for a model's name, a version taken, or model-only fields."""
        for key in ("model_format", "model_type", "init_kwargs", "model_class", "tokenizer"):
            if metadata.get(key) is not None:
                raise RegistryError(
                    f"'{key}' is for models; '{name}' is registered as a dataset",
                    hint="leave it out, or register a model with `mreg register --kind model`",
                )
        given = {k: v for k, v in metadata.items() if v is not None and v != {}}
        meta = to_meta(given)
        path = None if source is None else Path(source)
        return datasets.register(self.repo, self.folder, name, path, version, meta)

    def register_model(self, name: str, model: Any, *args: Any, **kwargs: Any) -> ModelEntry:
        """``ModelRegistry.register_model``."""
        return self.models.register_model(name, model, *args, **kwargs)

    # -- reading --------------------------------------------------------------------------

    def kind_of(self, name: str) -> str:
        """``model`` or ``dataset``: the kind of ``name``'s registered versions, else of the
        artifact the work tree tracks by that name (``model`` when neither says)."""
        return self._known_kind(name) or kinds.MODEL

    def search(self, query: str = "", latest: bool = False) -> list[Entry]:
        """Registered versions of models and datasets that match every term of ``query``
        (``kind:dataset rows>1000 column:label tag:cv stage:prod``; see
        ``mreg.registry.search``), by name then version; with ``latest``, only each name's
        newest match. RegistryError (a ValueError) names a malformed term."""
        terms = search.parse(query)
        histories = read_histories(self.repo)
        known = catalog.read_manifests(self.repo, self.folder, histories)
        models = catalog.of_kind(histories, known, kinds.MODEL)
        groups: dict[str, list[search.Candidate[Any]]] = {}
        groups.update(catalog.candidates(self.repo, self.folder, models))
        tables = catalog.of_kind(histories, known, kinds.DATASET)
        for name, found in datasets.candidates(tables).items():
            groups.setdefault(name, []).extend(found)
        chosen: list[Entry] = []
        for name in sorted(groups):
            matching = [c.entry for c in groups[name] if search.matches(terms, c)]
            chosen.extend(matching[-1:] if latest else matching)
        return chosen

    def list_all(self, kind: str | None = None) -> list[Entry]:
        """Every registered version not removed, of one kind or both."""
        if kind is not None:
            _check_kind(kind)
        return self.search(f"kind:{kind}" if kind else "")

    def info(self, name: str, version: str = "latest") -> Entry:
        """The entry of one version: ``latest``, ``vX.Y.Z``, a stage or a git revision."""
        if self.kind_of(name) == kinds.MODEL:
            return self.models.entry(name, version)
        found = self._datasets._history(name)
        label, commit = self._datasets._resolve(name, version)
        return datasets.entry(self.repo, found, label, commit)

    def show(self, spec: str) -> Target:
        """The artifact ``spec`` names, as ``Repo.show`` finds it (``NAME``, ``NAME@REV``, a
        path), or by ``NAME#STAGE``: the version now in that registry stage, at its tag."""
        if "#" in spec:
            # A stage is the registry's notion; its version's tag names the same manifest.
            spec = self.info(*split_spec(spec)).tag
        return self.repo.show(spec)

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name`` not removed, oldest first."""
        return self._registry(name).versions(name)

    def stages(self, name: str) -> dict[str, str]:
        """Stage -> the version of ``name`` now in it."""
        return self._registry(name).stages(name)

    def open(
        self, name: str, version: str = "latest", remote: str | None = None
    ) -> lance.LanceDataset:
        """The rows of one version (``mreg.open`` of its commit): a dataset's table, a model's
        tensor table. Fetched from the default remote when the cache lacks them, or read in
        place from ``remote``."""
        _, commit = self._registry(name)._resolve(name, version)
        return self.repo.open(name, rev=commit, remote=remote)

    def load_model(self, name: str, version: str = "latest", **kwargs: Any) -> Any:
        """``ModelRegistry.load_model``: ``(model, tokenizer)``."""
        return self.models.load_model(name, version, **kwargs)

    def export_model(self, name: str, version: str = "latest", *args: Any, **kwargs: Any) -> str:
        """``ModelRegistry.export_model``; RegistryError for a dataset, which has no export
        (restore a version with ``rollback``, read it with ``open``)."""
        if self.kind_of(name) == kinds.DATASET:
            raise RegistryError(
                f"'{name}' is a dataset: only models are exported",
                hint=f"restore a version with `mreg checkout {name}@VERSION`, "
                f"or read it with mreg.open('{name}')",
            )
        return self.models.export_model(name, version, *args, **kwargs)

    # -- lifecycle ------------------------------------------------------------------------

    def stage(self, name: str, version: str, stage: str) -> str:
        """Put ``version`` of a model or dataset in ``stage`` (tag ``NAME#STAGE#N``)."""
        return self._registry(name).stage(name, version, stage)

    def unstage(self, name: str, stage: str) -> str:
        """Take the version now in ``stage`` out of it (tag ``NAME#STAGE!#N``)."""
        return self._registry(name).unstage(name, stage)

    def deprecate(self, name: str) -> str:
        """Mark a whole model or dataset deprecated (tag ``NAME@deprecated``)."""
        return self._registry(name).deprecate(name)

    def delete(self, name: str, version: str | None = None) -> list[str]:
        """Deregister one version, or every version (tags ``NAME@vX.Y.Z!``); the data stay in
        the cache and on remotes until ``mreg gc``. Returns the tags."""
        return self._registry(name).remove_versions(name, version)

    def rollback(self, name: str, version: str, force: bool = False) -> Path:
        """Restore ``version`` (``vX.Y.Z``, a stage, ``latest``) of ``name`` into the work
        tree, manifest and file, as ``mreg checkout NAME@VERSION`` does; returns the file.
        Changes mreg does not hold are refused without ``force``."""
        label, commit = self._registry(name)._resolve(name, version)
        tagged = any(t.name == f"{name}@{label}" for t in self.repo.git.tags(f"{name}@{label}"))
        restored = self.repo.checkout([f"{name}@{label if tagged else commit}"], force=force)
        return self.repo.root / restored[0].artifact_rel

    def push(self, remote: str | None = None, jobs: int = 8) -> TransferResult:
        """``mreg push``: the work tree's data and that of every registered or staged version
        of either kind that the remote lacks."""
        return self.repo.push(remote=remote, jobs=jobs)

    # -- internals ------------------------------------------------------------------------

    def _registry(self, name: str) -> ModelRegistry:
        return self._datasets if self.kind_of(name) == kinds.DATASET else self.models

    def _known_kind(self, name: str) -> str | None:
        everything = read_histories(self.repo, name)
        if everything[name].registered:
            known = catalog.read_manifests(self.repo, self.folder, everything, save=False)
            tagged = {facts.kind for _, facts in known.values()}
            return kinds.DATASET if tagged == {kinds.DATASET} else kinds.MODEL
        found = self.repo.lookup(name)
        return found[1].kind if found is not None else None

    def _kind_of_source(self, name: str, source: Any) -> str:
        """The kind ``name`` has, or for a new name what ``source`` converts to;
        RegistryError when the two differ (a model file given for a dataset's name)."""
        known = self._known_kind(name)
        given = _kind_of(source)
        if known is not None and given is not None and given != known:
            raise kinds.wrong_kind(name, known, given)
        return known or given or kinds.MODEL


def _kind_of(source: Any) -> str | None:
    """What ``source`` is: ``dataset`` for None (the tracked dataset), else what a path
    converts to; None for an object or a path no converter reads (the model registry says)."""
    if source is None:
        return kinds.DATASET
    if not isinstance(source, str | Path) or not Path(source).exists():
        return None
    from mreg import converters

    try:
        return converters.detect(Path(source), opaque=False).kind
    except MregError:
        return None


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise RegistryError(f"unknown kind '{kind}'", hint="use model or dataset")
