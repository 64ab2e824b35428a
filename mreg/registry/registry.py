"""``ModelRegistry``: one facade over models registered in an mreg repository.

Every version is a commit and a ``NAME@vX.Y.Z`` tag, every stage move a ``NAME#STAGE#N`` tag, so
the registry's whole state is in git: clone the repository, ``mreg pull``, and it is all there.
Each method delegates to the module of its concept: ``location`` (which repository and folder),
``registration_request`` and ``new_version``, ``resolution`` (which version a name means),
``checked_load``, ``catalog`` (entries, listings, search), ``stages``, ``export``, ``validate``,
``stats``.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import ModelNotFound
from mreg.registry import (
    catalog,
    checked_load,
    export,
    kinds,
    location,
    metadata,
    model_cache,
    new_version,
    registration_request,
    stats,
    trust,
    validate,
)
from mreg.registry.entries import ModelEntry, ModelSummary
from mreg.registry.lifecycle import Lifecycle
from mreg.registry.loaders import StoredModel
from mreg.registry.location import log
from mreg.registry.stats import RegistryStats
from mreg.registry.tags import ModelHistory, check_model_name
from mreg.registry.types import ModelFormat, ModelType
from mreg.registry.validate import ValidationReport

if TYPE_CHECKING:
    from mreg.registry.onnx_export import DynamicAxes
    from mreg.storage.transfer import TransferResult


class ModelRegistry(Lifecycle):
    """Models registered in the mreg repository at ``path``.

    ``path`` defaults to ``$MODEL_REGISTRY_PATH``, then the current directory. A path inside the
    repository (``ModelRegistry("./my_models")``) is where new models are written; otherwise
    ``[registry] path`` in ``.mreg/config.toml``, or ``models/``. ``registry_path`` is the
    seed's name for ``path``. The git work tree is set up for mreg on first use (``mreg init``;
    ``init=False`` asks for it instead); outside a git work tree, NotARepository says to run
    ``git init``. Loading builds model classes of ``torch.nn``, ``transformers`` and of
    ``trusted_modules`` only (with those of ``$MREG_TRUSTED_MODULES`` and of
    ``.mreg/config.local.toml``; see ``mreg.registry.trust``).

    ``options``: the seed's (see ``location``). ``engine="remote"``: ``mreg.Client(url)``.
    """

    def __new__(
        cls, *args: Any, engine: str | None = None, url: str | None = None, **kw: Any
    ) -> Any:
        # engine="remote" (or $MREG_SERVER_URL set and no argument): the client of that server.
        client = location.remote_client(engine, url, bool(args or kw))
        return client if client is not None else super().__new__(cls)

    def __init__(
        self,
        path: str | Path | None = None,
        trusted_modules: list[str] | None = None,
        *,
        registry_path: str | Path | None = None,
        init: bool = True,
        engine: str | None = None,
        url: str | None = None,
        **options: Any,
    ) -> None:
        location.check_options(options)
        path = path if path is not None else registry_path
        self.repo, self.folder = location.open_registry(path, init)
        self.loaders: dict[ModelFormat, Any] = checked_load.default_loaders()
        # Loading builds classes of these modules only (mreg.registry.trust).
        self.trusted_modules = trust.trusted_modules(self.repo, trusted_modules)
        default = options.get("default_format")
        self.default_format = ModelFormat.parse(default) if default else None
        self.cache_size = model_cache.cache_size(options.get("cache_size"))
        self._loaded = model_cache.LoadedModels(self.cache_size)
        self.options = options

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
        tokenizer: Any = None,
        **metadata: Any,
    ) -> ModelEntry:
        """Save ``model``, track it, commit it and tag ``NAME@VERSION``; returns the entry.

        ``model``: an ``nn.Module`` (its class and JSON ``init_kwargs`` are recorded so
        ``load_model`` can rebuild it), a state dict, an ONNX ``ModelProto``, a Transformers
        ``PreTrainedModel`` (kept with ``tokenizer``, if given, in one ``save_pretrained``
        folder), or a path to weights or to a model folder. Without ``version``, the last
        version's patch is bumped (``v0.1.0`` first). RegistryError (a ValueError) for a
        duplicate or invalid version. Registrations in one repository run one at a time
        (the repository lock is held from choosing the version to the tag), so concurrent ones
        get versions of their own, or wait and then fail in one line.
        """
        check_model_name(name)
        if model_format is None and self.default_format is not None:
            model_format = registration_request.format_of(model, self.default_format)
        with self.repo.lock.held():
            history = self._history(name, must_exist=False)
            request = registration_request.check_request(
                self.repo, history, name, model, model_format, model_type, version,
                init_kwargs, model_class, metadata, tokenizer, self.trusted_modules,
            )  # fmt: skip
            loader = self._loader(request.format)
            new_version.register_version(self.repo, request, loader, self.folder / name)
        log.info("registered %s %s", name, request.version)
        return self.entry(name, request.version)

    def register_pytorch_model(self, name: str, model: Any, **kwargs: Any) -> ModelEntry:
        """``register_model`` of an ``nn.Module``, a state dict or a ``.pth`` /
        ``.safetensors`` path as a PyTorch model (pass ``init_kwargs=`` for a module)."""
        return self.register_model(name, model, ModelFormat.PYTORCH, **kwargs)

    def register_onnx_model(self, name: str, model_or_path: Any, **kwargs: Any) -> ModelEntry:
        """``register_model`` of an ONNX ``ModelProto`` or ``.onnx`` path (checked by
        ``onnx.checker`` first)."""
        return self.register_model(name, model_or_path, ModelFormat.ONNX, **kwargs)

    def register_huggingface_model(
        self, name: str, model: Any, tokenizer: Any = None, **kwargs: Any
    ) -> ModelEntry:
        """``register_model`` of a Transformers ``PreTrainedModel`` with its optional
        tokenizer, or of a ``save_pretrained`` folder's path."""
        return self.register_model(
            name, model, ModelFormat.HUGGINGFACE, tokenizer=tokenizer, **kwargs
        )

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
        (``return_proto=True``: the ModelProto); Transformers gives the model and its tokenizer
        (None when none was registered). With a cache size (``MODEL_REGISTRY_CACHE_SIZE``),
        loading a version again with the same arguments returns the same objects."""
        return self._load(name, version, device, cached=True, **kwargs)

    def _load(
        self, name: str, version: str, device: str, cached: bool, **kwargs: Any
    ) -> tuple[Any, Any | None]:
        label, commit = self._resolve(name, version)
        key = (name, commit, device, repr(sorted(kwargs.items())))
        found = self._loaded.get(key) if cached else None
        if found is not None:
            return found
        _, manifest = kinds.manifest_at(self.repo, name, commit)
        facts = metadata.from_manifest(manifest, label)
        stored = StoredModel(self.repo, commit, manifest, facts, self.trusted_modules)
        loader = self._loader(stored.metadata.format)
        loaded = checked_load.load(stored, loader, device, **kwargs)
        log.info("loaded %s %s", name, label)
        if cached:
            self._loaded.put(key, loaded)
        return loaded

    @contextlib.contextmanager
    def temporary_model(
        self, name: str, version: str = "latest", device: str = "cpu", **kwargs: Any
    ) -> Iterator[tuple[Any, Any | None]]:
        """``with registry.temporary_model(name) as (model, tokenizer):``: ``load_model`` for
        the block only. On exit the registry drops its references, collects garbage and
        empties the CUDA cache; the memory is freed once the caller's own names for the model
        are gone too (do not keep them past the block). It never enters the model cache."""
        model, tokenizer = self._load(name, version, device, cached=False, **kwargs)
        try:
            yield model, tokenizer
        finally:
            del model, tokenizer
            checked_load.free_memory()

    def get_model_info(self, name: str, version: str = "latest") -> ModelEntry | None:
        """The entry of one version (same ``version`` forms as ``load_model``), or None when
        there is no such model or version, as the seed system had it (``entry`` says why)."""
        try:
            return self.entry(name, version)
        except ModelNotFound:
            return None

    def entry(self, name: str, version: str = "latest") -> ModelEntry:
        """The entry of one version; ModelNotFound (a RegistryError) names what is missing."""
        label, commit = self._resolve(name, version)
        return self._entry(self._history(name), label, commit)

    def list_models(
        self, model_type: ModelType | str | None = None, **filters: Any
    ) -> list[ModelEntry]:
        """Every registered version not removed, by name then version. ``filters`` compare
        entry or metadata fields: ``name``, ``stage``, ``tags`` (membership), ``author``..."""
        entries = catalog.list_entries(self.repo, self.folder, model_type, filters)
        return [self._bound(e) for e in entries]

    def search(self, query: str, latest: bool = False) -> list[ModelEntry]:
        """Versions not removed that match every term of ``query`` (``resnet* type:vision
        tag:cv stage:prod accuracy>=0.9``; see ``mreg.registry.search``), by name then version;
        with ``latest``, only each model's newest matching version. RegistryError (a ValueError)
        names a malformed term. Manifests come from git in two batch reads, cached per blob."""
        found = catalog.search_entries(self.repo, self.folder, query, latest)
        return [self._bound(e) for e in found]

    def models(self) -> list[ModelSummary]:
        """One summary per model with a version not removed (datasets tagged ``NAME@vX.Y.Z``
        are not models)."""
        known = catalog.registered(self.repo, self.folder)
        summaries = (catalog.summary(self.repo, h, known) for h in known.histories.values())
        return [s for s in summaries if s is not None]

    def push(self, remote: str | None = None, jobs: int = 8) -> TransferResult:
        """Upload the data of every registered version and, as ``mreg push --all``, of every
        version at a branch or tag tip."""
        return self.repo.push(remote=remote, jobs=jobs, all_refs=True)

    # -- export, validation, statistics --------------------------------------------------

    def export_model(
        self,
        name: str,
        version: str = "latest",
        export_path: str | Path = ".",
        export_format: str | ModelFormat | None = None,
        example_input: Any = None,
        dynamic_axes: DynamicAxes | None = None,
    ) -> str:
        """Write one version as ``safetensors``, ``pth`` or ``onnx`` (or a ModelFormat); returns
        the path written. ``None``: as it is stored (a ``.safetensors`` or ``.pth`` file, an
        ``.onnx`` graph, a Transformers folder).

        ONNX is traced on ``example_input`` (default: from the recorded ``input_shape``, or
        token ids for a Transformers model) and takes any batch size: axis 0 of every input is
        dynamic, and axis 1 of a Transformers model's token inputs. ``dynamic_axes`` names
        more, in ``torch.onnx.export``'s form: ``{"x": {1: "length"}}`` or ``{"x": [1]}``."""
        entry = self.entry(name, version)
        load = functools.partial(self.load_model, name, entry.version)
        path = export.export_model(
            self.repo, entry, load, export_path, export_format, example_input, dynamic_axes
        )
        log.info("exported %s %s to %s", name, version, path)
        return str(path)

    def validate_registry(self, load: bool = True) -> ValidationReport:
        """Every version not removed: cached files present, sha256 re-hashed, loadable."""
        return validate.validate(self.repo, self.folder, self.load_model if load else None)

    def stats(self) -> RegistryStats:
        """Counts of models, versions, stages, data size, by format and by type (also a
        mapping with the seed's keys)."""
        return stats.stats(self.repo, self.folder)

    def get_registry_stats(self) -> RegistryStats:
        """``stats()``, by the seed's name."""
        return self.stats()

    def get_detailed_stats(self) -> RegistryStats:
        """``stats()``, by the name the seed's document left to implement."""
        return self.stats()

    # -- internals ------------------------------------------------------------------------

    def _loader(self, fmt: ModelFormat) -> Any:
        return checked_load.loader_for(self.loaders, fmt)

    def _entry(self, history: ModelHistory, version: str, commit: str) -> ModelEntry:
        return self._bound(catalog.entry(self.repo, history, version, commit))

    def _bound(self, entry: ModelEntry) -> ModelEntry:
        """``entry`` knowing its registry, for ``verify_integrity`` and ``calculate_checksum``."""
        return replace(entry, root=str(self.repo.root))
