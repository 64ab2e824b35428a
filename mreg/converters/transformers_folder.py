"""Hugging Face Transformers folders: ``config.json``, weights in one file or in shards, and the
small files around them (tokenizer, generation config, index, README...).

Weights are read shard by shard with the safetensors and pth converters and stored as tensor
rows; every other file is kept byte-for-byte as a side-file row. ``restore_info`` lists each
shard's file, format, tensor count and its converter's own restore_info (for safetensors, the
header text), so a folder of safetensors shards comes back byte-for-byte (``restore = "exact"``,
checked against the folder's tree digest) and ``pytorch_model*.bin`` shards come back with equal
tensors (``"equivalent"``). When a folder holds both, the safetensors are the weights and the
``.bin`` files are kept as side files, byte-for-byte and never unpickled.

Symbolic links are never followed: a folder holding one is refused.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, ClassVar, cast

from mreg.atomic import O_BINARY
from mreg.converters import pytorch, safetensors
from mreg.converters.base import (
    FolderFormat,
    ModelConverter,
    ModelSource,
    Placement,
    ReadOptions,
    Target,
    TensorRecord,
    file_record,
    folder_files,
    inside,
)
from mreg.errors import CorruptInput, IntegrityError, one_line

CONFIG = "config.json"
INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
_BIN_WEIGHTS = re.compile(r"^pytorch_model.*\.bin$")
_SHARD_CONVERTERS: dict[str, ModelConverter] = {
    "safetensors": safetensors.CONVERTER,
    "pth": pytorch.CONVERTER,
}
# config.json keys worth a line in the model's description, when present.
SUMMARY_KEYS = (
    "model_type",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "vocab_size",
    "max_position_embeddings",
    "torch_dtype",
    "dtype",
    "transformers_version",
)


class TransformersConverter(FolderFormat):
    format: ClassVar[str] = "transformers"
    kind: ClassVar[str] = "model"
    # Above generic folder formats: a folder with config.json and weights is a model.
    priority: ClassVar[int] = 50
    assembled_exactly: ClassVar[bool] = True

    def matches(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        names = {entry.name for entry in path.iterdir()}
        has_weights = any(_is_weights(n) for n in names) or any(i in names for i in INDEXES)
        return CONFIG in names and has_weights

    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        files = _files(path)
        _check_config(path, files)
        _check_indexes(path, files)
        weights = _weight_files(path, files)
        tensors: list[TensorRecord] = []
        shards: list[dict[str, Any]] = []
        keepalive: list[Any] = []
        exact = True
        owner: dict[str, str] = {}
        for relpath in weights:
            converter = _SHARD_CONVERTERS[_shard_format(relpath)]
            source = converter.read(path / relpath, options)
            _claim(path, relpath, source.tensors, owner)
            shards.append(
                {
                    "file": relpath,
                    "format": converter.format,
                    "tensors": len(source.tensors),
                    "info": source.restore_info,
                }
            )
            tensors.extend(source.tensors)
            keepalive.extend(source.keepalive)
            exact = exact and source.restore == "exact"
        stored = set(weights)
        side = [file_record(f, (path / f).read_bytes()) for f in files if f not in stored]
        return ModelSource(
            tensors=tensors + side,
            restore="exact" if exact else "equivalent",
            restore_info=json.dumps({"shards": shards}, sort_keys=True),
            keepalive=keepalive,
        )

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        folder = cast(Path, target)
        stream = iter(tensors)
        # Rows come in manifest order: each shard's tensors in turn, then the side files.
        for shard in json.loads(restore_info)["shards"]:
            converter = _SHARD_CONVERTERS[shard["format"]]
            # Not truncated: the folder is new, and bytes a pull already landed in the shard
            # (see placements) stay where they are.
            flags = os.O_WRONLY | os.O_CREAT | O_BINARY
            shard_fd = os.open(inside(folder, shard["file"]), flags, 0o644)
            with open(shard_fd, "wb") as out:
                converter.write(islice(stream, int(shard["tensors"])), shard["info"], out)
        for record in stream:
            if not record.is_file:
                raise IntegrityError(f"tensor '{record.name}' belongs to no shard of the model")
            destination = inside(folder, record.name)
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(record.data)

    def placements(self, names: Sequence[str], restore_info: str) -> list[Placement | None]:
        """Each shard's converter places its own tensors in its file; side files come last."""
        placed: list[Placement | None] = []
        for shard in json.loads(restore_info)["shards"]:
            inside(Path(), shard["file"])  # refuses a shard path that leaves the folder
            count = int(shard["tensors"])
            inner = _SHARD_CONVERTERS[shard["format"]].placements(
                names[len(placed) : len(placed) + count], shard["info"]
            )
            placed += [Placement(shard["file"], p.offset) if p else None for p in inner]
        return placed + [None] * (len(names) - len(placed))

    def describe(self, source: ModelSource) -> dict[str, str]:
        """What a reviewer wants to see: architecture, parameter count, dtypes, config summary."""
        config_row = next(t for t in source.tensors if t.is_file and t.name == CONFIG)
        config = json.loads(bytes(config_row.data))
        weights = [t for t in source.tensors if not t.is_file]
        info = {
            "architecture": ", ".join(config.get("architectures") or []) or "unknown",
            "parameters": str(sum(math.prod(t.shape) for t in weights)),
            "dtypes": ", ".join(sorted({t.dtype for t in weights})),
        }
        for key in SUMMARY_KEYS:
            if isinstance(config.get(key), str | int | float | bool):
                info[key] = str(config[key])
        return info


def _is_weights(name: str) -> bool:
    return name.endswith(".safetensors") or bool(_BIN_WEIGHTS.match(name))


def _shard_format(relpath: str) -> str:
    return "safetensors" if relpath.endswith(".safetensors") else "pth"


def _files(path: Path) -> list[str]:
    """Relative paths of every file in the folder, sorted; links and special files refused."""
    if path.is_symlink():
        raise CorruptInput(f"{path.name} is a symbolic link: refused (mreg does not follow links)")
    return folder_files(
        path, "mreg does not follow links in a model folder; copy the file in instead"
    )


def _check_config(path: Path, files: list[str]) -> None:
    if CONFIG not in files:
        raise CorruptInput(f"{path.name}/ has no {CONFIG}: not a Transformers model folder")
    try:
        config = json.loads((path / CONFIG).read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptInput(f"{path.name}/{CONFIG} is not valid JSON: {one_line(error)}") from None
    if not isinstance(config, dict):
        raise CorruptInput(f"{path.name}/{CONFIG} is not a JSON object")


def _check_indexes(path: Path, files: list[str]) -> None:
    """Every shard an index lists is a file of the folder (names are matched, never opened)."""
    present = set(files)
    for index in INDEXES:
        if index not in present:
            continue
        for shard in sorted(set(_weight_map(path, index).values())):
            if shard not in present:
                raise CorruptInput(
                    f"{path.name}/: shard '{shard}' is listed in {index} but missing"
                )


def _weight_map(path: Path, index: str) -> dict[str, str]:
    try:
        document = json.loads((path / index).read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptInput(f"{path.name}/{index} is not valid JSON: {one_line(error)}") from None
    weight_map = document.get("weight_map") if isinstance(document, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise CorruptInput(f"{path.name}/{index} has no valid weight_map")
    return weight_map


def _weight_files(path: Path, files: list[str]) -> list[str]:
    """The top-level weight files: the safetensors ones if any, else ``pytorch_model*.bin``."""
    top = [f for f in files if "/" not in f]
    weights = [f for f in top if f.endswith(".safetensors")]
    weights = weights or [f for f in top if _BIN_WEIGHTS.match(f)]
    if not weights:
        raise CorruptInput(
            f"{path.name}/ has no weights (model.safetensors, model-*-of-*.safetensors "
            "or pytorch_model*.bin)"
        )
    return weights


def _claim(path: Path, relpath: str, tensors: list[TensorRecord], owner: dict[str, str]) -> None:
    """Record which shard holds each tensor; a name in two shards is refused."""
    for tensor in tensors:
        if tensor.name in owner:
            raise CorruptInput(
                f"{path.name}/: tensor '{tensor.name}' is in both {owner[tensor.name]} "
                f"and {relpath}"
            )
        owner[tensor.name] = relpath


CONVERTER = TransformersConverter()
