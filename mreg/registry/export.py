"""Exporting a registered version to another format: PyTorch to safetensors, ``.pth`` or ONNX;
Transformers to ONNX; ONNX as is; any format as it is stored (``export_format=None``). The model
is loaded through the registry, so its sha256 is checked first. ONNX exports have dynamic axes
(``onnx_export.py``)."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import UnsupportedFormat, UsageError
from mreg.registry import kinds
from mreg.registry.entries import ModelEntry
from mreg.registry.integrity import check_integrity
from mreg.registry.loaders import StoredModel
from mreg.registry.onnx_export import export_module
from mreg.registry.types import ModelFormat

if TYPE_CHECKING:
    from mreg.registry.onnx_export import DynamicAxes
    from mreg.repo import Repo

# Loads the version being exported (``ModelRegistry.load_model`` of it): ``(model, tokenizer)``.
LoadVersion = Callable[..., tuple[Any, Any]]

# Target format -> the names a caller may give it.
TARGETS = {
    "safetensors": ("safetensors", "st"),
    "pth": ("pth", "pt", "pytorch", "torch"),
    "onnx": ("onnx",),
}
_TORCH_SOURCES = (ModelFormat.PYTORCH, ModelFormat.SAFETENSORS)


def export_format_of(value: str) -> str:
    """The canonical target format named by ``value``; UsageError lists the choices."""
    text = str(value).strip().lower().lstrip(".")
    for target, names in TARGETS.items():
        if text in names:
            return target
    raise UsageError(f"unknown export format '{value}'", hint=f"use one of: {', '.join(TARGETS)}")


def export_model(
    repo: Repo,
    entry: ModelEntry,
    load: LoadVersion,
    export_path: str | Path,
    export_format: str | ModelFormat | None,
    example_input: Any = None,
    dynamic_axes: DynamicAxes | None = None,
) -> Path:
    """Write the version of ``entry`` to ``export_path`` in ``export_format`` (None, or the
    model's own ModelFormat: as stored); returns the path. ``load`` loads it when the export
    needs the model itself (``return_proto=True`` for an ONNX model). ONNX exports take any
    batch size (see ``onnx_export``); ``dynamic_axes`` names more."""
    name = entry.name
    source = entry.model_format
    path = Path(export_path)
    if export_format is None or export_format == source != ModelFormat.PYTORCH:
        return _export_stored(repo, entry, path)
    target = export_format_of(export_format)
    if source == ModelFormat.ONNX:
        if target != "onnx":
            raise UnsupportedFormat(
                f"{name} {entry.version} is an ONNX model: it exports to onnx only"
            )
        import onnx

        proto, _ = load(return_proto=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
        return path
    transformers = source == ModelFormat.HUGGINGFACE
    if source not in _TORCH_SOURCES and not (transformers and target == "onnx"):
        only = " to onnx only" if transformers else ""
        raise UnsupportedFormat(
            f"cannot export {name} {entry.version}: format '{source.value}' has no exporter{only}"
        )
    model, _ = load()
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "onnx":
        shape = entry.metadata.input_shape
        label = f"{name} {entry.version}"
        export_module(model, path, example_input, shape, dynamic_axes, label, transformers)
    else:
        state = _state_dict(model, name, entry.version)
        if target == "safetensors":
            from safetensors.torch import save_file

            from mreg.registry.loaders import _unshared

            save_file(_unshared(state), str(path))
        else:
            import torch

            torch.save(state, str(path))
    return path


def _export_stored(repo: Repo, entry: ModelEntry, path: Path) -> Path:
    """The version's artifact as it was registered, rebuilt from the cache after its sha256
    check, at ``path`` (or in it, under the artifact's name, when ``path`` is a folder)."""
    _, manifest = kinds.manifest_at(repo, entry.name, entry.commit)
    check_integrity(repo, manifest, entry.commit)
    stored = StoredModel(repo, entry.commit, manifest, entry.metadata)
    if path.is_dir():
        path = path / Path(manifest.path).name
    path.parent.mkdir(parents=True, exist_ok=True)
    with repo.cache.staging() as folder:
        shutil.move(stored.restore_into(folder), path)
    return path


def _state_dict(model: Any, name: str, version: str) -> dict[str, Any]:
    import torch

    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsupportedFormat(
            f"{name} {version} is a checkpoint holding more than tensors: it exports to pth only",
            hint="use --format pth",
        )
    return state
