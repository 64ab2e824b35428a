"""A new version of a model: written into the registry folder, tracked with ``mreg add``, the
folder committed and ``NAME@vX.Y.Z`` tagged on that commit.

A registration that fails before its commit leaves the work tree as it was: the files it would
replace are set aside first and put back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import RegistryError
from mreg.registry import kinds
from mreg.registry.registration_request import Request
from mreg.repo.gitignore import ignore_in_git
from mreg.repo.manifest import SUFFIX

if TYPE_CHECKING:
    from mreg.repo import Repo

STEM = "model"


def register_version(repo: Repo, request: Request, loader: Any, folder: Path) -> None:
    """Write, add and commit ``request`` (into ``folder``, or where the model's manifest already
    is) and tag ``NAME@VERSION``. RegistryError when the name is an artifact of another kind.
    The caller holds the repository lock."""
    name = request.name
    found = repo.lookup(name)
    if found is not None and found[1].kind != kinds.MODEL:
        raise kinds.not_a_model(name, found[1].kind)
    if found is not None and Path(found[0]).parent != Path("."):
        folder = repo.root / Path(found[0]).parent
    commit = register(repo, request, loader, folder)
    repo.git.create_tag(
        f"{name}@{request.version}",
        f"Registering artifact {name} version {request.version}",
        rev=commit,
    )


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
        if path.name == ".gitignore" or path.name.endswith(SUFFIX):
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
    for path in folder.glob(f"{STEM}*{SUFFIX}"):
        if path.name != artifact + SUFFIX:
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
    # Only loaders that keep a tokenizer (or shard) are given one (plug-ins need not accept it).
    found: dict[str, Any] = {}
    if request.tokenizer is not None:
        found["tokenizer"] = request.tokenizer
    if request.max_shard_size is not None:
        found["max_shard_size"] = request.max_shard_size
    return found


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
