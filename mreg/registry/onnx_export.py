"""A PyTorch or Transformers module to ONNX (``torch.onnx.export``, dynamo) with dynamic axes, so
the exported model takes any batch size in onnxruntime, not only the example's.

Dynamic by default: axis 0 (``batch``) of every input, and axis 1 (``sequence``) of a
Transformers model's token inputs. Callers name more as torch's ``dynamic_axes``
(``{"x": {1: "steps"}}`` or ``{"x": [1]}``), or on the command line as ``INPUT:AXIS[=NAME]``.
"""

from __future__ import annotations

import inspect
import re
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mreg.errors import UnsupportedFormat, UsageError, one_line

BATCH = "batch"
SEQUENCE = "sequence"
TOKEN_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
# torch.export fixes an axis whose example size is 1, so the examples made here have two rows.
EXAMPLE_BATCH = 2
EXAMPLE_SEQUENCE = 8
_AXIS = re.compile(r"^(?P<input>[A-Za-z_][\w.]*):(?P<axis>\d+)(?:=(?P<name>[A-Za-z_]\w*))?$")

DynamicAxes = Mapping[str, Mapping[int, str] | Sequence[int]]


def parse_dynamic_axes(specs: Sequence[str]) -> dict[str, dict[int, str]]:
    """``INPUT:AXIS[=NAME]`` options as torch's ``dynamic_axes``; UsageError for a bad one."""
    axes: dict[str, dict[int, str]] = {}
    for spec in specs:
        match = _AXIS.match(spec)
        if match is None:
            raise UsageError(
                f"'{spec}' is not a dynamic axis",
                hint="use --dynamic-axis INPUT:AXIS[=NAME], for example x:1=length",
            )
        name = match["name"] or f"{match['input']}_{match['axis']}"
        axes.setdefault(match["input"], {})[int(match["axis"])] = name
    return axes


# Below this many bytes of weights an export is one .onnx file (protobuf stops at 2 GiB).
ONNX_SINGLE_FILE_LIMIT = (2 << 30) - (64 << 20)


def export_module(
    model: Any,
    path: Path,
    example_input: Any,
    input_shape: tuple[int, ...] | None,
    dynamic_axes: DynamicAxes | None,
    label: str,
    transformers: bool = False,
) -> None:
    """Write ``model`` to ``path`` as ONNX, traced on ``example_input`` (default: zeros of
    ``input_shape`` in a batch of two, or token ids for a Transformers model), with the
    default dynamic axes and ``dynamic_axes``. UsageError before anything is written when an
    axis names no input or no dimension of it; UnsupportedFormat when torch cannot export."""
    import torch

    if not isinstance(model, torch.nn.Module):
        raise UnsupportedFormat(
            f"{label} was registered as a state dict, so there is no module to export to ONNX",
            hint="register the nn.Module itself (with init_kwargs) to export it to ONNX",
        )
    args, kwargs = _example(model, example_input, input_shape, transformers, label)
    inputs = {**dict(zip(_parameter_names(model), args, strict=False)), **kwargs}
    axes = _axes(inputs, dynamic_axes or {}, transformers)
    try:
        _export(model, args, kwargs, path, axes)
    except ImportError as error:
        raise ImportError(
            f"exporting to ONNX needs onnx and onnxscript: pip install onnx onnxscript "
            f"({one_line(error)})"
        ) from None
    except Exception as error:
        raise UnsupportedFormat(
            f"torch.onnx.export failed for {label}: {one_line(error)}",
            hint="check example_input matches what the model's forward expects",
        ) from None


def _export(
    model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], path: Path, axes: dict[str, Any]
) -> None:
    import torch

    # One self-contained file, as users copy and servers send it, unless the weights pass
    # protobuf's 2 GiB limit: then they go to ``PATH.data`` beside it, as ONNX prescribes.
    weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
    with warnings.catch_warnings():
        # The dynamo exporter turns dynamic_axes into dynamic shapes itself, and names the
        # ONNX dimensions after them: its advice to pass dynamic_shapes instead is noise here.
        warnings.filterwarnings("ignore", message=".*'dynamic_axes' is not recommended")
        torch.onnx.export(
            model, args, str(path), kwargs=kwargs or None, dynamic_axes=axes,
            dynamo=True, verbose=False, external_data=weights >= ONNX_SINGLE_FILE_LIMIT,
        )  # fmt: skip


def _example(
    model: Any,
    example_input: Any,
    input_shape: tuple[int, ...] | None,
    transformers: bool,
    label: str,
) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """Positional and keyword example inputs."""
    import torch

    if isinstance(example_input, Mapping):
        return (), dict(example_input)
    if isinstance(example_input, tuple):
        return example_input, {}
    if example_input is not None:
        return (example_input,), {}
    if transformers:
        wanted = [n for n in TOKEN_INPUTS[:2] if n in _parameter_names(model)]
        # One tensor each: torch.export takes inputs that share a tensor for one input.
        return (), {
            n: torch.ones(EXAMPLE_BATCH, EXAMPLE_SEQUENCE, dtype=torch.long) for n in wanted
        }
    if not input_shape:
        raise UsageError(
            f"exporting {label} to ONNX needs an example input",
            hint="pass example_input=..., or register the model with input_shape=[...]",
        )
    # input_shape is one sample's shape; the export adds the batch axis.
    return (torch.zeros(EXAMPLE_BATCH, *input_shape),), {}


def _parameter_names(model: Any) -> list[str]:
    """The names of ``model.forward``'s parameters, in order (``*args`` has none)."""
    parameters = inspect.signature(model.forward).parameters.values()
    return [p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]


def _axes(
    inputs: dict[str, Any], wanted: DynamicAxes, transformers: bool
) -> dict[str, dict[int, str]]:
    """Torch's ``dynamic_axes`` of the named tensor ``inputs``: the defaults, then ``wanted``."""
    axes: dict[str, dict[int, str]] = {}
    for name, value in inputs.items():
        rank = getattr(value, "ndim", 0)
        if rank:
            axes[name] = {0: BATCH}
        if transformers and name in TOKEN_INPUTS and rank >= 2:
            axes[name][1] = SEQUENCE
    for name, named in wanted.items():
        if name not in inputs:
            raise UsageError(
                f"the model has no input named '{name}'",
                hint=f"its inputs: {', '.join(inputs) or 'none that can be named'}",
            )
        rank = getattr(inputs[name], "ndim", 0)
        pairs = named.items() if isinstance(named, Mapping) else ((a, f"{name}_{a}") for a in named)
        for axis, axis_name in pairs:
            if not 0 <= int(axis) < rank:
                raise UsageError(
                    f"input '{name}' has no axis {axis}: it has {rank} dimensions "
                    "(the batch axis included)"
                )
            axes.setdefault(name, {})[int(axis)] = str(axis_name)
    return axes
