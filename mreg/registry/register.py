"""``ModelRegistry.register_model``: write the model into the registry folder, track it with
``mreg add``, commit the folder and tag ``NAME@vX.Y.Z`` on that commit.

A registration that fails before its commit leaves the work tree as it was: the files it would
replace are set aside first and put back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import (
    AlreadyRegistered,
    GitError,
    ModelFileNotFound,
    RegistryError,
    UsageError,
    one_line,
)
from mreg.registry import metadata as fields
from mreg.registry.tags import ModelHistory, bump_patch, normalize_version
from mreg.registry.types import ModelFormat, ModelType
from mreg.repo import manifest as manifests
from mreg.repo.git import ignore_in_git

if TYPE_CHECKING:
    from mreg.repo import Repo

STEM = "model"
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
) -> Request:
    """Every check that needs no writing: name, format, version, metadata types, tokenizer."""
    try:
        manifests.check_name(name)
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
    fmt = ModelFormat.parse(model_format) if model_format else _infer_format(model)
    _check_tokenizer(tokenizer, fmt, model)
    chosen = normalize_version(version) if version is not None else bump_patch(history)
    if chosen in history.registered:
        removed = " (removed, and versions are never reused)" if chosen in history.removed else ""
        raise AlreadyRegistered(
            f"{name} {chosen} is already registered{removed}",
            hint=f"pass another version, or none for {bump_patch(history)}",
        )
    meta = fields.to_meta(metadata)
    meta[fields.FORMAT_KEY] = fmt.value
    meta[fields.TYPE_KEY] = ModelType.parse(model_type or ModelType.CUSTOM).value
    if model_class:
        meta[fields.CLASS_KEY] = model_class
    meta[fields.KWARGS_KEY] = _kwargs_json(init_kwargs)
    meta.setdefault("python_version", "{}.{}.{}".format(*sys.version_info[:3]))
    if repo.git.has_commits():
        meta["code_commit"] = repo.git.resolve("HEAD")
    lineage = _lineage(repo, meta.get("training_dataset"))
    if lineage:
        meta["training_dataset_version"] = lineage
    return Request(name, model, fmt, ModelType(meta[fields.TYPE_KEY]), chosen, meta, tokenizer)


def register(repo: Repo, request: Request, loader: Any, folder: Path) -> str:
    """Write, add and commit ``request`` into ``folder``; returns the commit sha."""
    model = request.model
    is_path = isinstance(model, str | os.PathLike)
    extracted = loader.get_metadata(None if is_path else model, str(model) if is_path else None)
    meta = {**{k: str(v) for k, v in extracted.items() if v is not None}, **request.meta}
    if is_path and hasattr(loader, "check_file"):
        loader.check_file(Path(model))
    rel_folder = repo.relpath(folder)
    with repo.cache.staging() as stage, _set_aside(folder, stage):
        if is_path:
            path = _copy_in(Path(model), folder, stage)
        else:
            path = Path(loader.save(model, str(folder / STEM), **_save_kwargs(request)))
        if path.resolve().parent != folder.resolve():
            raise RegistryError(f"the {request.format} loader wrote {path} outside {rel_folder}")
        _drop_other_manifests(folder, path.name)
        # A version's metadata are its own, not merged with the previous version's.
        repo.add(path, name=request.name, kind="model", meta=meta, replace_meta=True)
        message = f"Register {request.name} {request.version}"
        commit = repo.git.commit_paths(rel_folder, message)
    if is_path:
        _ignore_source(repo, Path(model))
    return commit


def _ignore_source(repo: Repo, source: Path) -> None:
    """Ignore the registered file in git, as ``mreg add`` does, when it lies in the work tree
    and git does not track it: a later ``git add -A`` must not commit the weights."""
    source = source.resolve()
    if not source.is_relative_to(repo.root) or source == repo.root:
        return
    relpath = repo.relpath(source)
    if relpath.split("/")[0] in (".git", ".mreg") or repo.git.tracked(relpath):
        return
    ignore_in_git(repo.root, relpath)


@contextlib.contextmanager
def _set_aside(folder: Path, stage: Path) -> Iterator[None]:
    """Move the folder's model files aside (copy its manifests and .gitignore); put them
    back if the block fails. Manifests stay in place so ``mreg add`` reuses unchanged data."""
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    aside = stage / "aside"
    aside.mkdir()
    for path in sorted(folder.iterdir()):
        if path.name == ".gitignore" or path.name.endswith(manifests.SUFFIX):
            shutil.copy2(path, aside / path.name)
        elif _is_model(path.name):
            os.rename(path, aside / path.name)
    try:
        yield
    except BaseException:
        _put_back(folder, aside, created)
        raise


def _drop_other_manifests(folder: Path, artifact: str) -> None:
    """Remove manifests of a model file this version no longer has (its format changed)."""
    for path in folder.glob(f"{STEM}*{manifests.SUFFIX}"):
        if path.name != artifact + manifests.SUFFIX:
            path.unlink()


def _put_back(folder: Path, aside: Path, created: list[Path]) -> None:
    for path in list(folder.iterdir()):
        if path.name == ".gitignore" or _is_model(path.name):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for path in aside.iterdir():
        os.rename(path, folder / path.name)
    for path in created:
        with contextlib.suppress(OSError):
            path.rmdir()


def _is_model(name: str) -> bool:
    """A model file (``model.safetensors``) or folder (``model``) the registry wrote."""
    return name == STEM or name.startswith(f"{STEM}.")


def _save_kwargs(request: Request) -> dict[str, Any]:
    # Only loaders that keep a tokenizer are given one (plug-in loaders need not accept it).
    return {} if request.tokenizer is None else {"tokenizer": request.tokenizer}


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


def _copy_in(source: Path, folder: Path, stage: Path) -> Path:
    source = source.resolve()
    if source.parent == folder.resolve():
        # The registry's own file was set aside: copy it back from there.
        source = stage / "aside" / source.name
    if source.is_dir():
        target = folder / STEM
        shutil.copytree(source, target, symlinks=True)
        return target
    target = folder / f"{STEM}{source.suffix.lower()}"
    shutil.copyfile(source, target)
    return target


def _infer_format(model: Any) -> ModelFormat:
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
