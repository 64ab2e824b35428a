"""safetensors files: tensors read straight from a memory map, restored byte-for-byte.

A safetensors file is an 8-byte header length, a JSON header, then the tensor bytes. When the
tensors tile the data region exactly (what every writer produces), keeping the header text is
enough to give the same file back, so the manifest says ``restore = "exact"``.
"""

from __future__ import annotations

import json
import mmap
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

from mreg.converters.base import (
    FileFormat,
    ModelSource,
    Placement,
    ReadOptions,
    Target,
    TensorRecord,
    write_tensor,
)
from mreg.errors import CorruptInput

# safetensors dtype code -> (mreg dtype name, item size in bytes)
DTYPES: dict[str, tuple[str, int]] = {
    "F64": ("float64", 8),
    "F32": ("float32", 4),
    "F16": ("float16", 2),
    "BF16": ("bfloat16", 2),
    "I64": ("int64", 8),
    "I32": ("int32", 4),
    "I16": ("int16", 2),
    "I8": ("int8", 1),
    "U64": ("uint64", 8),
    "U32": ("uint32", 4),
    "U16": ("uint16", 2),
    "U8": ("uint8", 1),
    "BOOL": ("bool", 1),
    "F8_E4M3": ("float8_e4m3fn", 1),
    "F8_E5M2": ("float8_e5m2", 1),
}
CODES = {name: code for code, (name, _) in DTYPES.items()}
MAX_HEADER = 100 << 20


class SafetensorsConverter(FileFormat):
    format: ClassVar[str] = "safetensors"
    kind: ClassVar[str] = "model"
    suffixes: ClassVar[tuple[str, ...]] = (".safetensors",)
    assembled_exactly: ClassVar[bool] = True

    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        with open(path, "rb") as handle:
            size = path.stat().st_size
            if size < 8:
                raise CorruptInput(f"{path.name} is truncated: not a safetensors file")
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        header_len = struct.unpack("<Q", mapped[:8])[0]
        if header_len > min(MAX_HEADER, size - 8):
            raise CorruptInput(f"{path.name} is truncated or not a safetensors file")
        header_bytes = bytes(mapped[8 : 8 + header_len])
        header = _parse_header(path, header_bytes)
        data_start = 8 + header_len
        tensors, end = _tensors(path, header, memoryview(mapped)[data_start:])
        exact = end == size - data_start and _tiles(header)
        # Exact: the original header text. Otherwise only the free-form metadata survives.
        info = (
            {"header": header_bytes.decode("utf-8")}
            if exact
            else {"metadata": header.get("__metadata__", {})}
        )
        return ModelSource(
            tensors=tensors,
            restore="exact" if exact else "equivalent",
            restore_info=json.dumps(info, sort_keys=True),
            keepalive=[mapped],
        )

    def placements(self, names: Sequence[str], restore_info: str) -> list[Placement | None]:
        """From the recorded header of an exact restore: after the 8-byte length and the header
        text, each tensor at the start of its ``data_offsets``."""
        info = json.loads(restore_info or "{}")
        if "header" not in info:
            return [None] * len(names)
        text = info["header"].encode("utf-8")
        header = json.loads(text)
        data_start = 8 + len(text)
        return [
            Placement("", data_start + int(header[name]["data_offsets"][0]))
            if name in header
            else None
            for name in names
        ]

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        out = cast(BinaryIO, target)
        info = json.loads(restore_info or "{}")
        if "header" in info:
            header = info["header"].encode("utf-8")
        else:
            tensors = list(tensors)
            header = _build_header(tensors, info.get("metadata", {}))
        out.write(struct.pack("<Q", len(header)))
        out.write(header)
        for tensor in tensors:
            write_tensor(out, tensor)


def _parse_header(path: Path, header_bytes: bytes) -> dict[str, Any]:
    try:
        header = json.loads(header_bytes)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CorruptInput(f"{path.name} has a corrupt safetensors header") from None
    if not isinstance(header, dict):
        raise CorruptInput(f"{path.name} has a corrupt safetensors header")
    return header


def _tensors(
    path: Path, header: dict[str, Any], data: memoryview
) -> tuple[list[TensorRecord], int]:
    entries = []
    for name, spec in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, item = DTYPES[spec["dtype"]]
            shape = tuple(int(d) for d in spec["shape"])
            begin, end = (int(x) for x in spec["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CorruptInput(f"{path.name}: tensor '{name}' has an unsupported entry") from None
        count = 1
        for dim in shape:
            count *= dim
        if not 0 <= begin <= end or end - begin != count * item:
            raise CorruptInput(f"{path.name}: tensor '{name}' has inconsistent offsets")
        if end > len(data):
            raise CorruptInput(f"{path.name} is truncated: tensor '{name}' ends past the file")
        entries.append((begin, TensorRecord(name, dtype, shape, data[begin:end])))
    entries.sort(key=lambda e: (e[0], len(e[1].data)))
    last = 0
    for begin, tensor in entries:
        # Aliased bytes would be stored once per tensor (40 views of 2 MiB became 80 MiB);
        # the safetensors library refuses such offsets too.
        if begin < last:
            raise CorruptInput(
                f"{path.name}: tensor '{tensor.name}' overlaps the bytes of another tensor"
            )
        last = begin + len(tensor.data)
    return [t for _, t in entries], last


def _tiles(header: dict[str, Any]) -> bool:
    """True when tensors follow each other with no gap or overlap from offset 0."""
    spans = sorted(tuple(v["data_offsets"]) for k, v in header.items() if k != "__metadata__")
    position = 0
    for begin, end in spans:
        if begin != position:
            return False
        position = end
    return True


def _build_header(tensors: list[TensorRecord], metadata: dict[str, str]) -> bytes:
    header: dict[str, Any] = {"__metadata__": metadata} if metadata else {}
    offset = 0
    for tensor in tensors:
        size = len(tensor.data)
        header[tensor.name] = {
            "dtype": CODES[tensor.dtype],
            "shape": list(tensor.shape),
            "data_offsets": [offset, offset + size],
        }
        offset += size
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return text + b" " * (-len(text) % 8)


CONVERTER = SafetensorsConverter()
