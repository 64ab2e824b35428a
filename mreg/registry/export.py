"""Exporting a registered version to another format: PyTorch to safetensors, ``.pth`` or ONNX;
ONNX as is. The model is loaded through the registry, so its sha256 is checked first."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import UnsupportedFormat, UsageError, one_line
from mreg.registry.types import ModelFormat

if TYPE_CHECKING:
    from mreg.registry.registry import ModelRegistry

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
    registry: ModelRegistry,
    name: str,
    version: str,
    export_path: str | Path,
    export_format: str,
    example_input: Any = None,
) -> Path:
    """Write ``name`` at ``version`` to ``export_path`` in ``export_format``; returns the path."""
    target = export_format_of(export_format)
    entry = registry.get_model_info(name, version)
    source = entry.model_format
    path = Path(export_path)
    if source == ModelFormat.ONNX:
        if target != "onnx":
            raise UnsupportedFormat(
                f"{name} {entry.version} is an ONNX model: it exports to onnx only"
            )
        import onnx

        proto, _ = registry.load_model(name, entry.version, return_proto=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(proto, str(path))
        return path
    if source not in _TORCH_SOURCES:
        raise UnsupportedFormat(
            f"cannot export {name} {entry.version}: format '{source.value}' has no exporter"
        )
    model, _ = registry.load_model(name, entry.version)
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "onnx":
        _to_onnx(model, path, example_input, entry.metadata.input_shape, name, entry.version)
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


def _state_dict(model: Any, name: str, version: str) -> dict[str, Any]:
    import torch

    state = model.state_dict() if isinstance(model, torch.nn.Module) else model
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UnsupportedFormat(
            f"{name} {version} is a checkpoint holding more than tensors: it exports to pth only",
            hint="use --format pth",
        )
    return state


def _to_onnx(
    model: Any,
    path: Path,
    example_input: Any,
    input_shape: tuple[int, ...] | None,
    name: str,
    version: str,
) -> None:
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UnsupportedFormat(
            f"{name} {version} was registered as a state dict, so there is no module to export "
            "to ONNX",
            hint="register the nn.Module itself (with init_kwargs) to export it to ONNX",
        )
    if example_input is None:
        if not input_shape:
            raise UsageError(
                f"exporting {name} {version} to ONNX needs an example input",
                hint="pass example_input=..., or register the model with input_shape=[...]",
            )
        # input_shape is one sample's shape; the export adds a batch of one.
        example_input = torch.zeros(1, *input_shape)
    args = example_input if isinstance(example_input, tuple) else (example_input,)
    try:
        torch.onnx.export(model, args, str(path), dynamo=True)
    except ImportError as error:
        raise ImportError(
            f"exporting to ONNX needs onnx and onnxscript: pip install onnx onnxscript "
            f"({one_line(error)})"
        ) from None
    except Exception as error:
        raise UnsupportedFormat(
            f"torch.onnx.export failed for {name} {version}: {one_line(error)}",
            hint="check example_input matches what the model's forward expects",
        ) from None
