"""JSON Lines files: one object per line, column types inferred by Arrow, streamed in blocks.

Arrow parses fast but names no line when it refuses one. When it fails, the file is read again
in Python to name the first line at fault: not JSON, not an object, or a value of another type
than its column's. ``JsonKinds`` and ``json_lines`` are shared with the ``.json`` converter.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

import pyarrow as pa
import pyarrow.json as pajson

from mreg.converters.base import FileFormat, ReadOptions, Target
from mreg.converters.csv import BLOCK_SIZE, arrow_stream

INFERRED_FROM = f"the first {BLOCK_SIZE >> 20} MiB"
NO_ROWS = "it holds no rows, so there are no columns to infer"


class JsonlConverter(FileFormat):
    format: ClassVar[str] = "jsonl"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".jsonl", ".ndjson")

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        return arrow_stream(
            path,
            "JSON Lines",
            lambda: pajson.open_json(path, read_options=pajson.ReadOptions(block_size=BLOCK_SIZE)),
            lambda schema, rows_read: _first_bad_line(path, schema, rows_read),
        )

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        out = cast(BinaryIO, target)
        for line in json_lines(batches):
            out.write(line)


def _first_bad_line(path: Path, schema: pa.Schema | None, rows_read: int) -> str | None:
    """What is wrong with the first line Arrow could not take, or None when none is found.

    The ``rows_read`` rows Arrow delivered are only counted: the fault lies after them.
    """
    kinds = JsonKinds(schema)
    rows = 0
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            rows += 1
            if rows <= rows_read:
                continue
            try:
                value = json.loads(line)
            except UnicodeDecodeError:
                return f"line {number} is not UTF-8 text"
            except ValueError as error:
                return f"line {number} is not JSON ({getattr(error, 'msg', error)})"
            if not isinstance(value, dict):
                return f"line {number} is {kind_of(value)}, not an object"
            problem = kinds.check_row(value)
            if problem:
                return f"line {number}: {problem}"
    return None if rows else NO_ROWS


def _kind(value: Any) -> str:
    """The JSON kind of a parsed value (``bool`` before ``int``: a bool is an int in Python)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    for kind, types in (("number", float), ("string", str), ("object", dict), ("array", list)):
        if isinstance(value, types):
            return kind
    return "unknown"


def _kind_of_type(type_: pa.DataType) -> str:
    """The JSON kind Arrow's reader accepts for a column of ``type_`` ("any": not checked)."""
    checks = (
        ("null", pa.types.is_null),
        ("boolean", pa.types.is_boolean),
        ("integer", pa.types.is_integer),
        ("number", pa.types.is_floating),
        ("string", pa.types.is_string),
        ("string", pa.types.is_timestamp),
        ("object", pa.types.is_struct),
        ("array", pa.types.is_list),
    )
    return next((kind for kind, check in checks if check(type_)), "any")


class JsonKinds:
    """The JSON kind of every column (``a``, ``a.b`` for a nested field, ``a[]`` for list items),
    learnt from Arrow's schema or, without one, from the rows seen so far; names the first value
    that does not fit.
    """

    def __init__(self, schema: pa.Schema | None) -> None:
        self.kinds: dict[str, str] = {}
        self.types: dict[str, str] = {}
        # Arrow's schema is fixed once inferred: a field it did not see is an error, not news.
        self.closed = schema is not None
        for field in schema or []:
            self._learn(field.name, field.type)

    def _learn(self, path: str, type_: pa.DataType) -> None:
        self.kinds[path] = _kind_of_type(type_)
        self.types[path] = str(type_)
        if pa.types.is_struct(type_):
            for child in type_:
                self._learn(f"{path}.{child.name}", child.type)
        elif pa.types.is_list(type_):
            self._learn(f"{path}[]", type_.value_type)

    def check_row(self, row: dict[str, Any]) -> str | None:
        """What is wrong with ``row`` (a field of another kind, or an unknown one), or None."""
        return self._check_object(row, "")

    def _check_object(self, value: dict[str, Any], prefix: str) -> str | None:
        for key, item in value.items():
            problem = self._check(item, f"{prefix}{key}")
            if problem:
                return problem
        return None

    def _check(self, value: Any, path: str) -> str | None:
        kind = _kind(value)
        if kind == "null":
            return None
        expected = self.kinds.get(path)
        if expected is None:
            if self.closed:
                return f"field '{path}' is not among the columns inferred from {INFERRED_FROM}"
            # Arrow widens integers to numbers within a block, so only the kind is kept.
            self.kinds[path] = "number" if kind == "integer" else kind
        elif not _fits(kind, expected):
            return self._conflict(path, kind, expected)
        if isinstance(value, dict):
            return self._check_object(value, f"{path}.")
        if isinstance(value, list):
            return next(filter(None, (self._check(item, f"{path}[]") for item in value)), None)
        return None

    def _conflict(self, path: str, kind: str, expected: str) -> str:
        if not self.closed:
            return f"column '{path}' holds {_an(kind)}, but earlier rows hold {_an(expected)}"
        if expected == "null":
            return (
                f"column '{path}' holds {_an(kind)}, but it is null in every row of "
                f"{INFERRED_FROM}, so its type was inferred as null"
            )
        return (
            f"column '{path}' holds {_an(kind)}, but its type was inferred as "
            f"{self.types[path]} from {INFERRED_FROM}"
        )


def _fits(kind: str, expected: str) -> bool:
    return expected == "any" or kind == expected or (kind, expected) == ("integer", "number")


def kind_of(value: Any) -> str:
    """``a string``, ``an object``: the kind of a parsed JSON value, for messages."""
    return _an(_kind(value))


def _an(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def json_lines(batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """One JSON object per row, each as a UTF-8 line; nulls are written, so columns keep order."""
    for batch in batches:
        for row in batch.to_pylist():
            yield json.dumps(row, ensure_ascii=False, default=_plain).encode() + b"\n"


def _plain(value: Any) -> Any:
    """A JSON value for what Arrow gives back that JSON has no type for (timestamps)."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    raise TypeError(f"a {type(value).__name__} cannot be written as JSON")


CONVERTER = JsonlConverter()
