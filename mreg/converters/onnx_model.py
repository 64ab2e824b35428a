"""ONNX models: initializers become tensor rows; the graph travels as one side-file row.

The graph row is the ModelProto with the initializers' data stripped (names, shapes and types
stay), so it is small even for large models. Checkout puts the tensors back as ``raw_data`` and
writes one self-contained ``.onnx`` file: onnxruntime gives the same outputs, but the bytes differ
from the original's (external data folded in, typed value fields turned into raw bytes), so the
manifest says ``restore = "equivalent"``. A self-contained file is limited to 2 GiB by protobuf;
larger models are refused rather than stored in a form checkout could not write back.

External data are read only after every location has been checked to lie inside the model's
folder, with no ``..``, absolute path or symbolic link on the way.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path, PureWindowsPath
from typing import TYPE_CHECKING, BinaryIO, ClassVar, cast

from mreg.converters.base import (
    FileFormat,
    ModelSource,
    ReadOptions,
    Target,
    TensorRecord,
    file_record,
)
from mreg.errors import CorruptInput, IntegrityError, UnsupportedFormat, one_line

if TYPE_CHECKING:
    import onnx

# The side-file row that holds the weightless graph.
GRAPH_ROW = "model.onnx.graph"
# protobuf refuses to serialize a message of 2 GiB or more.
PROTOBUF_LIMIT = 2**31 - 1

# ONNX element type name -> (mreg dtype, item size). Types not listed here (strings, and the
# packed 2-, 4- and 6-bit types, whose bytes do not follow from shape x item size) stay inside
# the graph row with their data.
DTYPES: dict[str, tuple[str, int]] = {
    "FLOAT": ("float32", 4),
    "DOUBLE": ("float64", 8),
    "FLOAT16": ("float16", 2),
    "BFLOAT16": ("bfloat16", 2),
    "INT8": ("int8", 1),
    "INT16": ("int16", 2),
    "INT32": ("int32", 4),
    "INT64": ("int64", 8),
    "UINT8": ("uint8", 1),
    "UINT16": ("uint16", 2),
    "UINT32": ("uint32", 4),
    "UINT64": ("uint64", 8),
    "BOOL": ("bool", 1),
    "COMPLEX64": ("complex64", 8),
    "COMPLEX128": ("complex128", 16),
    "FLOAT8E4M3FN": ("float8_e4m3fn", 1),
    "FLOAT8E4M3FNUZ": ("float8_e4m3fnuz", 1),
    "FLOAT8E5M2": ("float8_e5m2", 1),
    "FLOAT8E5M2FNUZ": ("float8_e5m2fnuz", 1),
    "FLOAT8E8M0": ("float8_e8m0fnu", 1),
}
_VALUE_FIELDS = (
    "raw_data",
    "float_data",
    "int32_data",
    "string_data",
    "int64_data",
    "double_data",
    "uint64_data",
    "external_data",
    "data_location",
)


class OnnxConverter(FileFormat):
    format: ClassVar[str] = "onnx"
    kind: ClassVar[str] = "model"
    suffixes: ClassVar[tuple[str, ...]] = (".onnx",)

    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        model = _load_without_data(path)
        external = _external_locations(model)
        for tensor_name, location in external:
            _check_location(path, tensor_name, location)
        _check_size(path, model)
        if external:
            _load_external_data(path, model)
        _check_model(path, model)
        tensors = [_take(path, t) for t in model.graph.initializer if _storable(t)]
        return ModelSource(
            tensors=[*tensors, file_record(GRAPH_ROW, model.SerializeToString())],
            restore="equivalent",
            restore_info="",
        )

    def companions(self, path: Path) -> list[str]:
        model = _load_without_data(path)
        for tensor_name, location in _external_locations(model):
            _check_location(path, tensor_name, location)
        return sorted({location for _, location in _external_locations(model)})

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        import onnx

        weights: list[TensorRecord] = []
        graph: TensorRecord | None = None
        for record in tensors:
            if record.name == GRAPH_ROW and record.is_file:
                graph = record
            else:
                weights.append(record)
        if graph is None:
            raise IntegrityError(f"the stored ONNX model has no '{GRAPH_ROW}' row")
        model = onnx.ModelProto()
        model.ParseFromString(bytes(graph.data))
        initializers = {t.name: t for t in model.graph.initializer}
        for record in weights:
            if record.name not in initializers:
                raise IntegrityError(f"tensor '{record.name}' is not an initializer of the graph")
            initializers[record.name].raw_data = bytes(record.data)
        cast(BinaryIO, target).write(model.SerializeToString())

    def describe(self, source: ModelSource) -> dict[str, str]:
        """What a reviewer wants to see of the model: opsets, signature, parameter count."""
        import onnx

        graph = next(t for t in source.tensors if t.name == GRAPH_ROW and t.is_file)
        model = onnx.ModelProto()
        model.ParseFromString(bytes(graph.data))
        weights = {t.name for t in model.graph.initializer}
        opsets = sorted(f"{o.domain or 'ai.onnx'}={o.version}" for o in model.opset_import)
        producer = f"{model.producer_name} {model.producer_version}".strip()
        parameters = sum(math.prod(t.shape) for t in source.tensors if not t.is_file)
        return {
            "opset": ", ".join(opsets),
            "ir_version": str(model.ir_version),
            "producer": producer,
            "inputs": "; ".join(_signature(v) for v in model.graph.input if v.name not in weights),
            "outputs": "; ".join(_signature(v) for v in model.graph.output),
            "parameters": str(parameters),
        }


def _load_without_data(path: Path) -> onnx.ModelProto:
    """The ModelProto of ``path``; external data stay unread."""
    import onnx
    from google.protobuf.message import DecodeError

    try:
        return onnx.load(str(path), load_external_data=False)
    except (DecodeError, ValueError, RuntimeError) as error:
        raise CorruptInput(
            f"{path.name} is truncated or not an ONNX model: {one_line(error)}"
        ) from None


def _external_locations(model: onnx.ModelProto) -> list[tuple[str, str]]:
    """(tensor name, location) of every tensor anywhere in the model that uses external data."""
    import onnx

    found = []
    for tensor in _all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        entries = {e.key: e.value for e in tensor.external_data}
        found.append((tensor.name, entries.get("location", "")))
    return found


def _all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the graph, its subgraphs and its functions: all that ``onnx`` might load
    external data for, and a little more."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        yield from _node_tensors(function.node)


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield from (sparse.values, sparse.indices)
    yield from _node_tensors(graph.node)


def _node_tensors(nodes: Iterable[onnx.NodeProto]) -> Iterator[onnx.TensorProto]:
    for node in nodes:
        for attribute in node.attribute:
            if attribute.HasField("t"):
                yield attribute.t
            yield from attribute.tensors
            sparse = list(attribute.sparse_tensors)
            if attribute.HasField("sparse_tensor"):
                sparse.append(attribute.sparse_tensor)
            for tensor in sparse:
                yield from (tensor.values, tensor.indices)
            if attribute.HasField("g"):
                yield from _graph_tensors(attribute.g)
            for graph in attribute.graphs:
                yield from _graph_tensors(graph)


def _check_location(path: Path, tensor_name: str, location: str) -> None:
    """Refuse a location that leaves the model's folder, before anything is opened there."""
    # ONNX writes '/', but a file made on Windows may hold '\\' or a drive letter.
    windows = PureWindowsPath(location)
    if not location or windows.anchor or location.startswith("/") or ".." in windows.parts:
        raise CorruptInput(
            f"{path.name}: tensor '{tensor_name}' keeps its data at '{location}', "
            "outside the model's folder: refused"
        )
    # The path onnx opens: on POSIX a '\\' is part of a file name, so walk the native parts.
    current = path.parent
    for part in Path(location).parts:
        current = current / part
        if current.is_symlink():
            raise CorruptInput(
                f"{path.name}: tensor '{tensor_name}' keeps its data at '{location}', "
                "a symbolic link: refused (mreg does not follow links out of the model's folder)"
            )
    if not current.is_file():
        raise CorruptInput(
            f"{path.name}: tensor '{tensor_name}' keeps its data in '{location}', "
            "which is missing or not a file"
        )


def _check_size(path: Path, model: onnx.ModelProto) -> None:
    """Refuse a model whose self-contained form would be too large for protobuf."""
    total = model.ByteSize() + sum(_external_size(t) for t in _all_tensors(model))
    if total > PROTOBUF_LIMIT:
        raise UnsupportedFormat(
            f"{path.name}: {total / 2**30:.1f} GiB with its external data; mreg restores ONNX "
            "models as one self-contained file, which protobuf limits to 2 GiB"
        )


def _external_size(tensor: onnx.TensorProto) -> int:
    """Bytes a tensor keeps in external data: its ``length``, else what its shape needs."""
    entries = {e.key: e.value for e in tensor.external_data}
    if entries.get("length", "").isdigit():
        return int(entries["length"])
    item = DTYPES.get(_type_name(tensor.data_type), ("", 0))[1]
    return math.prod(tensor.dims) * item if entries else 0


def _load_external_data(path: Path, model: onnx.ModelProto) -> None:
    import onnx
    from onnx.external_data_helper import load_external_data_for_model

    try:
        load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, RuntimeError, onnx.checker.ValidationError) as error:
        raise CorruptInput(
            f"{path.name}: cannot read its external data: {one_line(error)}"
        ) from None
    left = _external_locations(model)
    if left:
        tensor_name, location = left[0]
        raise UnsupportedFormat(
            f"{path.name}: tensor '{tensor_name}' keeps external data ('{location}') "
            "where onnx does not load it"
        )


def _check_model(path: Path, model: onnx.ModelProto) -> None:
    import onnx

    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as error:
        raise CorruptInput(f"{path.name} fails the ONNX checker: {one_line(error)}") from None


def _storable(tensor: onnx.TensorProto) -> bool:
    return _type_name(tensor.data_type) in DTYPES


def _take(path: Path, tensor: onnx.TensorProto) -> TensorRecord:
    """The tensor as a row; its values are then cleared from the graph."""
    dtype, item = DTYPES[_type_name(tensor.data_type)]
    shape = tuple(int(d) for d in tensor.dims)
    data = tensor.raw_data if tensor.HasField("raw_data") else _typed_bytes(tensor)
    if len(data) != math.prod(shape) * item:
        raise CorruptInput(
            f"{path.name}: initializer '{tensor.name}' holds {len(data)} bytes, "
            f"its shape {list(shape)} of {dtype} needs {math.prod(shape) * item}"
        )
    for name in _VALUE_FIELDS:
        tensor.ClearField(name)
    return TensorRecord(tensor.name, dtype, shape, memoryview(data))


def _typed_bytes(tensor: onnx.TensorProto) -> bytes:
    """Values kept in typed fields (float_data, int32_data...) as raw bytes."""
    import numpy as np
    from onnx import numpy_helper

    # numpy's native order is little-endian on every platform mreg runs on.
    return np.ascontiguousarray(numpy_helper.to_array(tensor)).tobytes()


def _type_name(data_type: int) -> str:
    import onnx

    return str(onnx.TensorProto.DataType.Name(data_type))


def _signature(value: onnx.ValueInfoProto) -> str:
    """``name: dtype[dims]`` of a graph input or output, symbolic dimensions by name."""
    kind = value.type.WhichOneof("value")
    if kind != "tensor_type":
        return f"{value.name}: {kind or 'unknown'}"
    tensor_type = value.type.tensor_type
    onnx_type = _type_name(tensor_type.elem_type)
    dtype = DTYPES[onnx_type][0] if onnx_type in DTYPES else onnx_type.lower()
    if not tensor_type.HasField("shape"):
        return f"{value.name}: {dtype}"
    dims = [
        str(d.dim_value) if d.HasField("dim_value") else d.dim_param or "?"
        for d in tensor_type.shape.dim
    ]
    return f"{value.name}: {dtype}[{', '.join(dims)}]"


CONVERTER = OnnxConverter()
