"""Loading a model that a client downloaded, as the local ``load_model`` loads it: PyTorch
weights never through pickle, module classes rebuilt from trusted modules only."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

from mreg.registry.entries import ModelEntry
from mreg.registry.types import ModelFormat


def trusted(given: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The modules whose classes a client may build: the built-in ones, ``given`` and those of
    ``$MREG_TRUSTED_MODULES`` (the client has no repository config to read)."""
    from mreg.registry import trust

    names = [*given, *os.environ.get(trust.ENV, "").split(",")]
    return tuple(dict.fromkeys([*trust.BUILT_IN, *(n.strip() for n in names if n.strip())]))


def load_downloaded(
    entry: ModelEntry,
    path: Path,
    scratch: Path,
    device: str,
    trusted: tuple[str, ...],
    kwargs: dict[str, Any],
) -> tuple[Any, Any | None]:
    """``(model, tokenizer)`` of ``entry`` from the file downloaded at ``path`` (a tar of a
    model folder), unpacking into ``scratch``."""
    from mreg.registry import checked_load
    from mreg.registry.loaders import build_module

    fmt = entry.model_format
    loader = checked_load.default_loaders()[fmt]
    if fmt == ModelFormat.HUGGINGFACE:
        folder = scratch / "unpacked"
        with tarfile.open(path) as archive:
            archive.extractall(folder, filter="data")
        model_folder = next(folder.iterdir())
        model = loader.load(
            str(model_folder),
            device=device,
            model_class=entry.metadata.model_class,
            trusted=trusted,
            **kwargs,
        )
        return model, None
    if fmt == ModelFormat.ONNX:
        return loader.load(str(path.rename(path.with_suffix(".onnx"))), **kwargs), None
    suffix = {"pth": ".pth"}.get(_source_format(entry), ".safetensors")
    state = loader.load(str(path.rename(path.with_suffix(suffix))), device=device)
    meta = entry.metadata
    if meta.model_class is None:
        return state, None
    model = build_module(meta.model_class, meta.init_kwargs, trusted)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval(), None


def _source_format(entry: ModelEntry) -> str:
    return "pth" if entry.manifest_path.endswith(".pth.mreg.toml") else "safetensors"
