"""PyTorch ``.pth``/``.pt`` checkpoints: state dicts and nested dicts of tensors and plain values.

Files are only ever opened with ``torch.load(weights_only=True)``: a file holding any other pickled
object is refused, and nothing in it runs. The non-tensor structure (dict nesting, ints, strings,
tuples...) is kept as a JSON "skeleton" so checkout rebuilds an equal object and saves it again.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import threading
import warnings
import zipfile
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

from mreg.converters.base import FileFormat, ModelSource, ReadOptions, Target, TensorRecord
from mreg.errors import CorruptInput, UnsupportedFormat, one_line

# torch reads this variable inside torch.load and then ignores weights_only=True.
UNSAFE_OVERRIDE = "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"
_ENV_LOCK = threading.Lock()


@contextlib.contextmanager
def _weights_only_enforced() -> Iterator[None]:
    with _ENV_LOCK:
        saved = os.environ.pop(UNSAFE_OVERRIDE, None)
        try:
            yield
        finally:
            if saved is not None:
                os.environ[UNSAFE_OVERRIDE] = saved


def safe_torch_load(path: Path) -> Any:
    """``torch.load(path, weights_only=True)``, refusing anything else whatever the environment.

    Any file that is not a checkpoint of tensors and plain values is one CorruptInput line:
    torch's parsers raise many types on arbitrary bytes (IndexError, KeyError, struct.error),
    and warn on stderr about what they then refuse; both stay behind this border.
    """
    import torch

    _refuse_torchscript(path)
    with _weights_only_enforced(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as error:
                if "mmap" not in str(error):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as error:
            reason = _unpickler_reason(error)
            if "global" in reason or "class" in reason:
                raise CorruptInput(
                    f"{path.name}: refused: it holds pickled objects that are not tensors or "
                    f"plain values, and mreg loads only with weights_only=True ({reason})"
                ) from None
            raise _not_a_checkpoint(path, reason) from None
        except Exception as error:  # the border with torch's parsers: any type on bad bytes
            raise _not_a_checkpoint(path, one_line(error, 160)) from None


def _refuse_torchscript(path: Path) -> None:
    """A TorchScript archive (``torch.jit.save``) holds code, not a state dict: refused before
    torch sees it (torch.load would warn and dispatch it to torch.jit.load)."""
    try:
        with zipfile.ZipFile(path) as archive:
            scripted = any(n.endswith("constants.pkl") for n in archive.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return
    if scripted:
        raise UnsupportedFormat(
            f"{path.name} is a TorchScript archive (torch.jit.save), not a checkpoint of "
            "tensors: mreg does not load TorchScript",
            hint="save the weights with torch.save(model.state_dict(), PATH) and add that file",
        )


def _unpickler_reason(error: pickle.UnpicklingError) -> str:
    """The line of torch's long weights_only message that says what was refused."""
    text = str(error)
    _, found, rest = text.partition("WeightsUnpickler error:")
    lines = [line.strip() for line in (rest if found else text).splitlines() if line.strip()]
    return (lines[0] if lines else type(error).__name__)[:160]


def _not_a_checkpoint(path: Path, reason: str) -> CorruptInput:
    return CorruptInput(f"{path.name} is truncated or not a PyTorch checkpoint: {reason}")


class PytorchConverter(FileFormat):
    format: ClassVar[str] = "pth"
    kind: ClassVar[str] = "model"
    suffixes: ClassVar[tuple[str, ...]] = (".pth", ".pt")

    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        checkpoint = safe_torch_load(path)
        tensors: list[TensorRecord] = []
        skeleton = _encode(checkpoint, "", tensors, set())
        return ModelSource(
            tensors=tensors,
            restore="equivalent",
            restore_info=json.dumps(skeleton, separators=(",", ":")),
            keepalive=[checkpoint],
        )

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        out = cast(BinaryIO, target)
        import torch

        by_index = [_to_torch(t) for t in tensors]
        checkpoint = _decode(json.loads(restore_info), by_index)
        torch.save(checkpoint, out)


def _encode(value: Any, name: str, tensors: list[TensorRecord], names: set[str]) -> Any:
    """JSON for the structure of ``value``; tensors are appended to ``tensors`` and referenced."""
    import torch

    if isinstance(value, torch.Tensor):
        tensors.append(_record(value, _unique(name or "tensor", names)))
        return {"tensor": len(tensors) - 1}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, dict):
        kind = "odict" if isinstance(value, OrderedDict) else "dict"
        items = [
            [_encode(k, "", [], set()), _encode(v, _join(name, k), tensors, names)]
            for k, v in value.items()
        ]
        return {kind: items}
    if isinstance(value, torch.Size):
        return {"size": list(value)}
    if isinstance(value, list | tuple):
        kind = "list" if isinstance(value, list) else "tuple"
        return {kind: [_encode(v, _join(name, i), tensors, names) for i, v in enumerate(value)]}
    if isinstance(value, torch.dtype):
        return {"dtype": str(value).removeprefix("torch.")}
    if isinstance(value, torch.device):
        return {"device": str(value)}
    raise UnsupportedFormat(
        f"checkpoint value at '{name or '(top)'}' is a {type(value).__name__}, "
        "which mreg cannot store"
    )


def _decode(node: Any, tensors: list[Any]) -> Any:
    import torch

    if not isinstance(node, dict):
        return node
    ((kind, body),) = node.items()
    if kind == "tensor":
        return tensors[body]
    if kind in ("dict", "odict"):
        pairs = [(_decode(k, tensors), _decode(v, tensors)) for k, v in body]
        return OrderedDict(pairs) if kind == "odict" else dict(pairs)
    if kind == "list":
        return [_decode(v, tensors) for v in body]
    if kind == "tuple":
        return tuple(_decode(v, tensors) for v in body)
    if kind == "size":
        return torch.Size(body)
    if kind == "dtype":
        return getattr(torch, body)
    if kind == "device":
        return torch.device(body)
    raise CorruptInput(f"unknown checkpoint structure '{kind}' in manifest")


def _record(tensor: Any, name: str) -> TensorRecord:
    import torch

    if tensor.layout != torch.strided or tensor.is_quantized:
        raise UnsupportedFormat(f"tensor '{name}' is sparse or quantized, which mreg cannot store")
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
    dtype = str(tensor.dtype).removeprefix("torch.")
    return TensorRecord(name, dtype, tuple(tensor.shape), memoryview(raw).cast("B"))


def _to_torch(record: TensorRecord) -> Any:
    import torch

    dtype = getattr(torch, record.dtype)
    if len(record.data) == 0:
        return torch.empty(record.shape, dtype=dtype)
    return torch.frombuffer(bytearray(record.data), dtype=dtype).reshape(record.shape)


def _join(prefix: str, key: Any) -> str:
    return f"{prefix}.{key}" if prefix else str(key)


def _unique(name: str, names: set[str]) -> str:
    candidate, counter = name, 1
    while candidate in names:
        counter += 1
        candidate = f"{name}#{counter}"
    names.add(candidate)
    return candidate


CONVERTER = PytorchConverter()
