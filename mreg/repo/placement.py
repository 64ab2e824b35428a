"""An imported source put in place: at its PATH in one rename, then added; if the add refuses
it, it goes away again and the file or folder it replaced comes back."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import UsageError
from mreg.repo import manifest as manifests
from mreg.repo.add import add

if TYPE_CHECKING:
    from mreg.repo.add_options import AddOptions, AddResult
    from mreg.repo.work_tree import WorkTree


def check_replaceable(repo: WorkTree, target: Path, digest: str, source: str, force: bool) -> None:
    """Refuse to overwrite a file (or folder) at ``target`` that mreg could not give back."""
    if force or not (target.exists() or target.is_symlink()):
        return
    rel = repo.relpath(target)
    if repo.state.file_sha256(rel) == digest:
        return
    tracked = repo.manifests().get(rel + manifests.SUFFIX)
    if tracked is not None and repo.workspace_in_sync(rel, tracked):
        return  # its bytes are in the cache: `mreg checkout` brings them back
    raise UsageError(
        f"{rel} exists and differs from {source}",
        hint="pass --force to replace it, or choose another PATH",
    )


def add_placed(repo: WorkTree, staged: Path, target: Path, options: AddOptions) -> AddResult:
    """Rename ``staged`` to ``target`` and add it; the old ``target`` back if the add fails."""
    with _placed(repo, staged, target):
        return add(repo, target, options)


@contextlib.contextmanager
def _placed(repo: WorkTree, staged: Path, target: Path) -> Iterator[None]:
    """Rename ``staged`` to ``target``; if the block fails, put the old ``target`` back."""
    with repo.cache.staging() as aside:
        old = aside / "old"
        had_old = target.exists() or target.is_symlink()
        if had_old:
            os.rename(target, old)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(staged, target)
            yield
        except BaseException:
            _remove(target)
            if had_old:
                os.rename(old, target)
            raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
