"""What a caller asked to register, checked before anything is written: the name, the format
(told by the model itself when not given), the version, the metadata, the tokenizer, and how to
build an ``nn.Module`` again (``init_kwargs``)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import GitError, ModelFileNotFound, RegistryError, UsageError, one_line
from mreg.registry import constructor, lineage, trust
from mreg.registry.metadata import CLASS_KEY, FORMAT_KEY, KWARGS_KEY, TYPE_KEY, to_meta
from mreg.registry.tags import ModelHistory, choose_version
from mreg.registry.types import ModelFormat, ModelType
from mreg.repo.manifest import check_name

if TYPE_CHECKING:
    from mreg.repo import Repo

_SUFFIX_FORMATS = {
    ".safetensors": ModelFormat.SAFETENSORS,
    ".pth": ModelFormat.PYTORCH,
    ".pt": ModelFormat.PYTORCH,
    ".onnx": ModelFormat.ONNX,
}


@dataclass(frozen=True)
class Request:
    """What the caller asked to register, checked."""

    name: str
    model: Any
    format: ModelFormat
    model_type: ModelType
    version: str
    meta: dict[str, str]
    tokenizer: Any = None
    # save_pretrained's max_shard_size ("2GB"): how many weight files the folder gets.
    max_shard_size: str | int | None = None


def check_request(
    repo: Repo,
    history: ModelHistory,
    name: str,
    model: Any,
    model_format: ModelFormat | str | None,
    model_type: ModelType | str | None,
    version: str | None,
    init_kwargs: Mapping[str, Any] | str | None,
    model_class: str | None,
    metadata: Mapping[str, Any],
    tokenizer: Any = None,
    trusted: tuple[str, ...] = trust.BUILT_IN,
) -> Request:
    """Every check that needs no writing: name, format, version, metadata types, tokenizer,
    and how to build an ``nn.Module`` again (``init_kwargs``, recovered when not given)."""
    try:
        check_name(name)
    except UsageError as error:
        raise RegistryError(error.message, hint=error.hint) from None
    if repo.git.identity() is None:  # before anything is written or staged
        raise GitError(
            "git has no identity to commit and tag this version with (user.name and "
            "user.email are not set)",
            hint='git config --global user.name "Your Name" && '
            "git config --global user.email you@example.com",
        )
    if isinstance(model, str | os.PathLike) and not Path(model).exists():
        raise ModelFileNotFound(f"{model}: no such file or folder")
    fmt = ModelFormat.parse(model_format) if model_format else infer_format(model)
    _check_tokenizer(tokenizer, fmt, model)
    metadata = dict(metadata)
    shard = metadata.pop("max_shard_size", None)
    _check_shard_size(shard, fmt, model)
    chosen = choose_version(history, version)
    given = {key: metadata.pop(key) for key in lineage.ARGUMENTS if key in metadata}
    meta = to_meta(metadata)
    meta[FORMAT_KEY] = fmt.value
    meta[TYPE_KEY] = ModelType.parse(model_type or ModelType.CUSTOM).value
    if model_class:
        meta[CLASS_KEY] = model_class
    if init_kwargs is None and model_class is None and _rebuilt(model, fmt):
        init_kwargs = constructor.recover_init_kwargs(model, trusted)
    meta[KWARGS_KEY] = _kwargs_json(init_kwargs)
    meta.setdefault("python_version", "{}.{}.{}".format(*sys.version_info[:3]))
    if repo.git.has_commits():
        meta["code_commit"] = repo.git.resolve("HEAD")
    trained_on = _lineage(repo, meta.get("training_dataset"))
    if trained_on:
        meta["training_dataset_version"] = trained_on
    version = None
    if trained_on and trained_on != "uncommitted":
        version = trained_on if "@" in trained_on else f"{meta['training_dataset']}@{trained_on}"
    meta.update(lineage.record(given, version))
    model_type = ModelType(meta[TYPE_KEY])
    return Request(name, model, fmt, model_type, chosen, meta, tokenizer, shard)


def _check_shard_size(shard: Any, fmt: ModelFormat, model: Any) -> None:
    if shard is None:
        return
    if fmt != ModelFormat.HUGGINGFACE or isinstance(model, str | os.PathLike):
        raise RegistryError(
            "max_shard_size splits the weights of a Transformers model that save_pretrained "
            "writes; mreg keeps every tensor as its own row, so other models need no shards",
            hint="leave max_shard_size out",
        )
    if not isinstance(shard, str | int) or isinstance(shard, bool):
        raise RegistryError(f"max_shard_size must be a size like '2GB', not {shard!r}")


def _check_tokenizer(tokenizer: Any, fmt: ModelFormat, model: Any) -> None:
    if tokenizer is None:
        return
    if fmt != ModelFormat.HUGGINGFACE:
        raise RegistryError(
            f"a tokenizer is kept with Transformers models only, not with format '{fmt.value}'",
            hint="pass model_format=ModelFormat.HUGGINGFACE with a PreTrainedModel",
        )
    if isinstance(model, str | os.PathLike):
        raise RegistryError(
            "a tokenizer cannot be added to a model folder given by path",
            hint="save it into the folder first: tokenizer.save_pretrained(folder)",
        )


def format_of(model: Any, default: ModelFormat) -> ModelFormat:
    """The format ``model`` itself tells (its type, its file's suffix), else ``default``."""
    try:
        return infer_format(model)
    except RegistryError:
        return default


def infer_format(model: Any) -> ModelFormat:
    if isinstance(model, str | os.PathLike):
        path = Path(model)
        if path.is_dir():
            return ModelFormat.HUGGINGFACE
        if path.suffix.lower() in _SUFFIX_FORMATS:
            return _SUFFIX_FORMATS[path.suffix.lower()]
        raise RegistryError(
            f"cannot tell the format of {path.name}", hint="pass model_format=ModelFormat...."
        )
    module = type(model).__module__.split(".")[0]
    if module == "onnx":
        return ModelFormat.ONNX
    # Subclasses of a Transformers model count too, wherever they are defined.
    if any(c.__module__.split(".")[0] == "transformers" for c in type(model).__mro__):
        return ModelFormat.HUGGINGFACE
    if module == "torch" or isinstance(model, dict) or hasattr(model, "state_dict"):
        return ModelFormat.PYTORCH
    raise RegistryError(
        f"cannot tell the format of a {type(model).__name__}",
        hint="pass model_format=ModelFormat....",
    )


def _rebuilt(model: Any, fmt: ModelFormat) -> bool:
    """Whether loading builds ``model``'s class again from recorded arguments."""
    return fmt in (ModelFormat.PYTORCH, ModelFormat.SAFETENSORS) and constructor.is_module(model)


def _kwargs_json(init_kwargs: Mapping[str, Any] | str | None) -> str:
    """``init_kwargs`` (a mapping, or its JSON text as ``--meta init_kwargs=...`` gives it) as
    JSON; RegistryError for anything that is not a JSON object."""
    if init_kwargs is None:
        return "{}"
    if isinstance(init_kwargs, str):
        try:
            init_kwargs = json.loads(init_kwargs)
        except ValueError as error:
            raise RegistryError(
                f"init_kwargs is not JSON: {one_line(error)}",
                hint="give a JSON object, for example init_kwargs='{\"hidden\": 8}'",
            ) from None
    if not isinstance(init_kwargs, Mapping):
        raise RegistryError(
            f"init_kwargs must be a JSON object of constructor arguments, "
            f"not {type(init_kwargs).__name__}",
            hint="for example init_kwargs='{\"hidden\": 8}'",
        )
    try:
        return json.dumps(dict(init_kwargs), sort_keys=True)
    except TypeError as error:
        raise RegistryError(
            f"init_kwargs must be JSON values (numbers, strings, lists, dicts): {error}"
        ) from None


def _lineage(repo: Repo, dataset: str | None) -> str | None:
    """``NAME@vX.Y.Z`` or the commit of the dataset artifact ``dataset``, if there is one."""
    found = repo.lookup(dataset) if dataset else None
    if found is None or found[1].kind != "dataset":
        return None
    commits = repo.git.log(found[0])
    if not commits:
        return "uncommitted"
    tags = [t.name for t in repo.git.tags(f"{dataset}@v") if t.commit == commits[0].sha]
    return sorted(tags)[-1] if tags else commits[0].sha
