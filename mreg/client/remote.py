"""What both clients of ``mreg serve`` (REST and gRPC) answer the same way on top of their
transport's calls: the local registry's seed-style answers (None, a bool) and ``load_model``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import ModelNotFound

if TYPE_CHECKING:
    from mreg.registry.entries import ModelEntry


class RemoteRegistry:
    """A transport gives ``entry``, ``remove_versions`` and ``download``; ``trusted_modules``
    are the modules whose classes ``load_model`` may build (with ``$MREG_TRUSTED_MODULES``)."""

    trusted_modules: list[str]

    def entry(self, name: str, version: str = "latest") -> ModelEntry:
        raise NotImplementedError

    def remove_versions(self, name: str, version: str | None = None) -> list[str]:
        raise NotImplementedError

    def download(self, target: str, path: str | Path) -> Path:
        raise NotImplementedError

    def get_model_info(self, name: str, version: str = "latest") -> ModelEntry | None:
        """The entry of one version (``latest``, ``vX.Y.Z``, a stage, a git revision); None when
        there is no such model or version, as the local registry answers."""
        try:
            return self.entry(name, version)
        except ModelNotFound:
            return None

    def remove_model(self, name: str, version: str | None = None) -> bool:
        """True when something was removed, False when there is no such model or version (or
        it was removed already), as the local registry answers."""
        try:
            return bool(self.remove_versions(name, version))
        except ModelNotFound:
            return False

    def load_model(
        self, name: str, version: str = "latest", device: str = "cpu", **kwargs: Any
    ) -> tuple[Any, Any | None]:
        """``(model, tokenizer)`` of one version, as the local ``load_model`` gives them: the
        file is downloaded (sha256 checked) into a temporary folder and loaded from there
        (PyTorch weights never through pickle, classes of trusted modules only)."""
        from mreg.client import downloaded

        entry = self.entry(name, version)
        with tempfile.TemporaryDirectory(prefix="mreg-model-") as scratch:
            path = self.download(f"{entry.name}@{entry.version}", Path(scratch) / "download")
            trusted = downloaded.trusted(self.trusted_modules)
            return downloaded.load_downloaded(entry, path, Path(scratch), device, trusted, kwargs)
