"""The lifecycle of registered versions: stage, unstage, deprecate, deregister (``remove_*``),
and which versions and stages a name has. Each move is a GTO tag written under the repository
lock on the history ``_history`` reads: a model's here, a dataset's in ``DataManager``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import ModelNotFound
from mreg.registry import resolution, stages
from mreg.registry.location import log
from mreg.registry.tags import ModelHistory, normalize_version

if TYPE_CHECKING:
    from pathlib import Path

    from mreg.registry.model_cache import LoadedModels
    from mreg.repo import Repo


class Lifecycle:
    """``ModelRegistry``'s lifecycle methods, on the registry's ``repo`` and ``folder``."""

    repo: Repo
    folder: Path
    _loaded: LoadedModels

    def versions(self, name: str) -> list[str]:
        """Registered versions of ``name`` not removed, oldest first."""
        return self._history(name).versions()

    def remove_model(self, name: str, version: str | None = None) -> bool:
        """``remove_versions``, answering as the seed did: True when something was removed,
        False when there is no such model or version (or it was removed already)."""
        try:
            self.remove_versions(name, version)
        except ModelNotFound:
            return False
        return True

    def remove_versions(self, name: str, version: str | None = None) -> list[str]:
        """Deregister one version (every version without ``version``): GTO's ``NAME@vX.Y.Z!``
        tags. The data stay in the cache and on remotes until ``mreg gc``. Returns the tags;
        ModelNotFound names a model or version that is not there."""
        with self.repo.lock.held():
            history = self._history(name)
            if version is None:
                chosen = history.versions()
            else:
                chosen = [normalize_version(version)]
                resolution.check_active(history, chosen[0])
            tags = stages.deregister(self.repo, history, chosen)
            for v in chosen:
                log.info("removed %s %s", name, v)
        self._loaded.clear()
        return tags

    def stage(self, name: str, version: str, stage: str) -> str:
        """Put ``version`` in ``stage`` (tag ``NAME#STAGE#N``); returns the tag. Stage moves
        hold the repository lock from reading N to the tag, so concurrent ones number apart."""
        with self.repo.lock.held():
            history = self._history(name)
            chosen = normalize_version(version)
            resolution.check_active(history, chosen)
            tag = stages.assign(self.repo, history, chosen, stage)
        log.info("staged %s %s in %s", name, chosen, stage)
        return tag

    def unstage(self, name: str, stage: str) -> str:
        """Take the version now in ``stage`` out of it (tag ``NAME#STAGE!#N``)."""
        with self.repo.lock.held():
            return stages.unassign(self.repo, self._history(name), stage)

    def deprecate(self, name: str) -> str:
        """Mark the whole model deprecated (tag ``NAME@deprecated``)."""
        with self.repo.lock.held():
            return stages.deprecate(self.repo, self._history(name))

    def stages(self, name: str) -> dict[str, str]:
        """Stage -> the version now in it."""
        return self._history(name).current_stages()

    def _history(self, name: str, must_exist: bool = True) -> ModelHistory:
        return resolution.history_of(self.repo, name, self.folder, must_exist)

    def _resolve(self, name: str, version: str) -> tuple[str, str]:
        """(version label, commit) for ``latest``, ``vX.Y.Z``, a stage or a git revision."""
        return resolution.resolve(self.repo, self._history(name), version)
