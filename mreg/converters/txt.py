"""Text files: one row per line in a ``text`` column, streamed in blocks.

A row is its line without the line terminator, nothing else stripped. The file's terminator
(``\\n``, or ``\\r\\n`` when the first line ends so) and whether the last line has one are kept in
the schema metadata, so a file with one kind of line ending comes back byte for byte. A file that
mixes them comes back with the first line's everywhere: equal lines, hence "equivalent".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from mreg.converters.base import FileFormat, ReadOptions, Target
from mreg.errors import CorruptInput, UsageError

BLOCK_SIZE = 8 << 20
METADATA_KEY = b"mreg.txt"
COLUMN = "text"
PLAIN_SCHEMA = pa.schema([pa.field(COLUMN, pa.string())])


class TxtConverter(FileFormat):
    format: ClassVar[str] = "txt"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".txt",)

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        layout = {"newline": _newline(path), "final_newline": _ends_with_newline(path)}
        schema = PLAIN_SCHEMA.with_metadata({METADATA_KEY: json.dumps(layout, sort_keys=True)})
        return pa.RecordBatchReader.from_batches(
            schema, _batches(path, layout["newline"] == "\r\n")
        )

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        out = cast(BinaryIO, target)
        layout = json.loads((batches.schema.metadata or {}).get(METADATA_KEY, b"{}"))
        newline = layout.get("newline", "\n").encode()
        separator = b""
        for batch in batches:
            lines = batch.column(COLUMN)
            _check_writable(lines)
            if len(lines):
                out.write(separator + newline.join(s.encode() for s in lines.to_pylist()))
                separator = newline
        if separator and layout.get("final_newline", True):
            out.write(newline)


def _newline(path: Path) -> str:
    """``\\r\\n`` when the first line ends so, else ``\\n``."""
    with open(path, "rb") as handle:
        previous = b""
        while block := handle.read(BLOCK_SIZE):
            end = block.find(b"\n")
            if end >= 0:
                return "\r\n" if (previous + block[:end]).endswith(b"\r") else "\n"
            previous = block[-1:]
    return "\n"


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def _batches(path: Path, crlf: bool) -> Iterator[pa.RecordBatch]:
    """One batch per block of whole lines; a line longer than a block waits for its end."""
    pending: list[bytes] = []
    lines_before = 0
    with open(path, "rb") as handle:
        while block := handle.read(BLOCK_SIZE):
            cut = block.rfind(b"\n") + 1
            if cut == 0:
                pending.append(block)
                continue
            # Every complete line ends with b"\n", which never falls inside a UTF-8 character.
            complete = b"".join([*pending, block[:cut]])
            pending = [block[cut:]]
            lines = _decode(path, complete, lines_before).split("\n")[:-1]
            lines_before += len(lines)
            yield _batch(lines, crlf)
    rest = b"".join(pending)
    if rest:
        yield _batch([_decode(path, rest, lines_before)], crlf)


def _decode(path: Path, data: bytes, lines_before: int) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = lines_before + data.count(b"\n", 0, error.start) + 1
        raise CorruptInput(f"{path.name} line {line} is not UTF-8 text") from None


def _batch(lines: list[str], crlf: bool) -> pa.RecordBatch:
    column = pa.array(lines, pa.string())
    if crlf:
        column = pc.replace_substring_regex(column, pattern="\r$", replacement="")
    return pa.record_batch([column], schema=PLAIN_SCHEMA)


def _check_writable(lines: pa.Array) -> None:
    """Rows appended from another format may hold what no line of a text file can."""
    if lines.null_count:
        raise UsageError("cannot write a null row as a line of a text file")
    if pc.any(pc.match_substring(lines, "\n")).as_py():
        raise UsageError("cannot write a row holding a line break as one line of a text file")


CONVERTER = TxtConverter()
