"""JSON files holding one array of objects: the rows of a table, typed as JSON Lines are.

A JSON array cannot be read piece by piece without a streaming parser, so the whole file is
loaded; its objects then go through the JSON Lines path (Arrow's type inference, and the same
messages naming the row at fault). Large tables are better kept as JSON Lines or Parquet.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

import pyarrow as pa
import pyarrow.json as pajson

from mreg.converters.base import FileFormat, ReadOptions, Target
from mreg.converters.csv import BLOCK_SIZE, arrow_stream
from mreg.converters.jsonl import NO_ROWS, JsonKinds, json_lines, kind_of
from mreg.errors import CorruptInput


class JsonArrayConverter(FileFormat):
    format: ClassVar[str] = "json"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".json",)

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        rows = _load_rows(path)
        # Arrow reads JSON Lines only: each object becomes one line of an in-memory copy.
        lines = b"".join(json.dumps(row, ensure_ascii=False).encode() + b"\n" for row in rows)
        return arrow_stream(
            path,
            "JSON",
            lambda: pajson.open_json(
                io.BytesIO(lines), read_options=pajson.ReadOptions(block_size=BLOCK_SIZE)
            ),
            lambda schema, rows_read: _first_bad_row(rows, schema, rows_read),
        )

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        out = cast(BinaryIO, target)
        separator = b"[\n"
        for line in json_lines(batches):
            out.write(separator + line.rstrip(b"\n"))
            separator = b",\n"
        out.write(b"[]\n" if separator == b"[\n" else b"\n]\n")


def _load_rows(path: Path) -> list[dict[str, Any]]:
    """The objects of the top-level array of ``path``; CorruptInput names what is wrong."""
    try:
        with open(path, "rb") as handle:
            value = json.load(handle)
    except UnicodeDecodeError:
        raise CorruptInput(f"{path.name} is not UTF-8 text") from None
    except json.JSONDecodeError as error:
        raise CorruptInput(
            f"{path.name} is not valid JSON: {error.msg} "
            f"(line {error.lineno}, column {error.colno})"
        ) from None
    if not isinstance(value, list):
        raise CorruptInput(
            f"{path.name} holds {kind_of(value)} at the top level, not an array of objects",
            hint=f"to keep it as it is (a tokenizer, a config): mreg add {path.name} --format blob",
        )
    for number, row in enumerate(value, 1):
        if not isinstance(row, dict):
            raise CorruptInput(
                f"{path.name} is not valid JSON: row {number} is {kind_of(row)}, not an object"
            )
    if not value:
        raise CorruptInput(f"{path.name} is not valid JSON: {NO_ROWS}")
    return value


def _first_bad_row(
    rows: list[dict[str, Any]], schema: pa.Schema | None, rows_read: int
) -> str | None:
    kinds = JsonKinds(schema)
    for number, row in enumerate(rows[rows_read:], rows_read + 1):
        problem = kinds.check_row(row)
        if problem:
            return f"row {number}: {problem}"
    return None


CONVERTER = JsonArrayConverter()
