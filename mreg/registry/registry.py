"""``ModelRegistry``: one facade over models registered in an mreg repository.

Every version is a commit and a ``NAME@vX.Y.Z`` tag, every stage move a ``NAME#STAGE#N`` tag, so
the registry's whole state is in git: clone the repository, ``mreg pull``, and it is all there.
Each method delegates to the module of its concept: ``register``, ``resolution`` (which version
a name means), ``loading``, ``catalog`` (entries, listings, search candidates), ``stages``,
``export``, ``validate``, ``stats``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import RegistryError
from mreg.registry import catalog, loading, resolution, trust
from mreg.registry import export as exporting
from mreg.registry import metadata as fields
from mreg.registry import register as registering
from mreg.registry import search as searching
from mreg.registry import stages as staging
from mreg.registry import stats as counting
from mreg.registry import validate as validating
from mreg.registry.loaders import StoredModel
from mreg.registry.tags import ModelHistory, check_model_name, normalize_version
from mreg.registry.types import ModelEntry, ModelFormat, ModelSummary, ModelType
from mreg.repo import Repo
from mreg.repo.manifest import Manifest

if TYPE_CHECKING:
    from mreg.registry.onnx_export import DynamicAxes
    from mreg.storage.transfer import TransferResult

ENV_PATH = "MODEL_REGISTRY_PATH"
DEFAULT_FOLDER = "models"


class ModelRegistry:
    """Models registered in the mreg repository at ``path``.

    ``path`` defaults to ``$MODEL_REGISTRY_PATH``, then the current directory. A path inside the
    repository (``ModelRegistry("./my_models")``) is where new models are written; otherwise
    ``[registry] path`` in ``.mreg/config.toml``, or ``models/``. Loading builds model classes
    of ``torch.nn``, ``transformers`` and of ``trusted_modules`` only (with those of
    ``$MREG_TRUSTED_MODULES`` and of ``.mreg/config.local.toml``; see ``mreg.registry.trust``).
    """

    def __new__(
        cls, *args: Any, engine: str | None = None, url: str | None = None, **kwargs: Any
    ) -> Any:
        """``engine="remote"`` (or ``$MREG_SERVER_URL`` set, with no engine named) gives the
        client of the server at ``url``: the same methods, answered by ``mreg serve``."""
        url = url or os.environ.get("MREG_SERVER_URL")
        if engine == "remote" or (engine is None and url and not args and not kwargs):
            if not url:
                raise RegistryError("engine='remote' needs url=", hint="or set MREG_SERVER_URL")
            from mreg.client import Client

            return Client(url)
        if engine not in (None, "local"):
            raise RegistryError(f"unknown engine {engine!r}", hint="use 'local' or 'remote'")
        return super().__new__(cls)

    def __init__(
        self,
        path: str | Path | None = None,
        trusted_modules: list[str] | None = None,
        engine: str | None = None,
        url: str | None = None,
    ) -> None:
        chosen = Path(path or os.environ.get(ENV_PATH) or ".").resolve()
        existing = chosen
        while not existing.exists():
            existing = existing.parent
        self.repo = Repo(existing)
        configured = self.repo.config.shared.get("registry", {}).get("path", DEFAULT_FOLDER)
        explicit = path is not None or ENV_PATH in os.environ
        inside = explicit and chosen != self.repo.root
        self.folder = chosen if inside else self.repo.root / configured
        self.loaders: dict[ModelFormat, Any] = loading.default_loaders()
        # Loading builds classes of these modules only (mreg.registry.trust).
        self.trusted_modules = trust.trusted_modules(self.repo, trusted_modules)

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
        with self.repo.lock.held():
            history = self._history(name, must_exist=False)
            request = registering.check_request(
                self.repo, history, name, model, model_format, model_type, version,
                init_kwargs, model_class, metadata, tokenizer,
            )  # fmt: skip
            loader = self._loader(request.format)
            found = self.repo.lookup(name)
            if found is not None and found[1].kind != catalog.MODEL:
                raise catalog.not_a_model(name, found[1].kind)
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
        (None when none was registered)."""
        label, commit = self._resolve(name, version)
        _, manifest = self._manifest(name, commit)
        metadata = fields.from_manifest(manifest, label)
        stored = StoredModel(self.repo, commit, manifest, metadata, self.trusted_modules)
        loader = self._loader(stored.metadata.format)
        return loading.load(stored, loader, device, **kwargs)

    @contextlib.contextmanager
    def temporary_model(
        self, name: str, version: str = "latest", device: str = "cpu", **kwargs: Any
    ) -> Iterator[tuple[Any, Any | None]]:
        """``with registry.temporary_model(name) as (model, tokenizer):``: ``load_model`` for
        the block only. On exit the registry drops its references, collects garbage and
        empties the CUDA cache; the memory is freed once the caller's own names for the model
        are gone too (do not keep them past the block)."""
        model, tokenizer = self.load_model(name, version, device, **kwargs)
        try:
            yield model, tokenizer
        finally:
            del model, tokenizer
            loading.free_memory()

    def get_model_info(self, name: str, version: str = "latest") -> ModelEntry:
        """The entry of one version (same ``version`` forms as ``load_model``)."""
        label, commit = self._resolve(name, version)
        return self._entry(self._history(name), label, commit)

    def list_models(
        self, model_type: ModelType | str | None = None, **filters: Any
    ) -> list[ModelEntry]:
        """Every registered version not removed, by name then version. ``filters`` compare
        entry or metadata fields: ``name``, ``stage``, ``tags`` (membership), ``author``..."""
        catalog.check_filters(filters)
        wanted_type = ModelType.parse(model_type) if model_type else None
        entries = []
        for candidates in catalog.candidates(self.repo, self.folder).values():
            for candidate in candidates:
                entry = candidate.entry
                if wanted_type and entry.model_type != wanted_type:
                    continue
                if all(catalog.matches(entry, k, v) for k, v in filters.items()):
                    entries.append(entry)
        return entries

    def search(self, query: str, latest: bool = False) -> list[ModelEntry]:
        """Versions not removed that match every term of ``query`` (``resnet* type:vision
        tag:cv stage:prod accuracy>=0.9``; see ``mreg.registry.search``), by name then version;
        with ``latest``, only each model's newest matching version. RegistryError (a ValueError)
        names a malformed term. Manifests come from git in two batch reads, cached per blob."""
        terms = searching.parse(query)
        found = []
        for candidates in catalog.candidates(self.repo, self.folder).values():
            chosen = [c.entry for c in candidates if searching.matches(terms, c)]
            found.extend(chosen[-1:] if latest else chosen)
        return found

    def models(self) -> list[ModelSummary]:
        """One summary per model with a version not removed (datasets tagged ``NAME@vX.Y.Z``
        are not models)."""
        known = catalog.registered(self.repo, self.folder)
        summaries = (catalog.summary(self.repo, h, known) for h in known.histories.values())
        return [s for s in summaries if s is not None]

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name`` not removed, oldest first."""
        return self._history(name).versions()

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
        export_format: str = "safetensors",
        example_input: Any = None,
        dynamic_axes: DynamicAxes | None = None,
    ) -> Path:
        """Write one version as ``safetensors``, ``pth`` or ``onnx``; returns the path written.

        ONNX is traced on ``example_input`` (default: from the recorded ``input_shape``, or
        token ids for a Transformers model) and takes any batch size: axis 0 of every input is
        dynamic, and axis 1 of a Transformers model's token inputs. ``dynamic_axes`` names
        more, in ``torch.onnx.export``'s form: ``{"x": {1: "length"}}`` or ``{"x": [1]}``."""
        return exporting.export_model(
            self, name, version, export_path, export_format, example_input, dynamic_axes
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
        with self.repo.lock.held():
            history = self._history(name)
            if version is None:
                chosen = history.versions()
            else:
                chosen = [normalize_version(version)]
                resolution.check_active(history, chosen[0])
            tags = []
            for v in chosen:
                tag = f"{name}@{v}!"
                message = f"Deregistering artifact {name} version {v}"
                self.repo.git.create_tag(tag, message, rev=history.registered[v].commit)
                tags.append(tag)
        return tags

    def stage(self, name: str, version: str, stage: str) -> str:
        """Put ``version`` in ``stage`` (tag ``NAME#STAGE#N``); returns the tag. Stage moves
        hold the repository lock from reading N to the tag, so concurrent ones number apart."""
        with self.repo.lock.held():
            history = self._history(name)
            chosen = normalize_version(version)
            resolution.check_active(history, chosen)
            return staging.assign(self.repo, history, chosen, stage)

    def unstage(self, name: str, stage: str) -> str:
        """Take the version now in ``stage`` out of it (tag ``NAME#STAGE!#N``)."""
        with self.repo.lock.held():
            return staging.unassign(self.repo, self._history(name), stage)

    def deprecate(self, name: str) -> str:
        """Mark the whole model deprecated (tag ``NAME@deprecated``)."""
        with self.repo.lock.held():
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
        return resolution.history_of(self.repo, name, self.folder, must_exist)

    def _resolve(self, name: str, version: str) -> tuple[str, str]:
        """(version label, commit) for ``latest``, ``vX.Y.Z``, a stage or a git revision."""
        return resolution.resolve(self.repo, self._history(name), version)

    def _manifest(self, name: str, commit: str) -> tuple[str, Manifest]:
        return catalog.manifest_at(self.repo, name, commit)

    def _entry(self, history: ModelHistory, version: str, commit: str) -> ModelEntry:
        return catalog.entry(self.repo, history, version, commit)
