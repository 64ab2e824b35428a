"""CSV files: column types inferred by Arrow, ragged rows refused with the line they are on.

``arrow_stream`` is shared with the JSON converters: Arrow infers a text table's column types from
its first block, and every refusal, at open or many blocks later, becomes one CorruptInput line.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import pyarrow as pa
import pyarrow.csv as pacsv

from mreg.converters.base import FileFormat, ReadOptions, Target
from mreg.errors import CorruptInput, one_line

# Column types are inferred from the first block: a large one makes a wrong guess rarer.
BLOCK_SIZE = 16 << 20

# Given the schema Arrow inferred (None when it failed before inferring one) and how many rows
# it delivered before failing, say which record is at fault, or None to quote Arrow's message.
Explain = Callable[[pa.Schema | None, int], str | None]


def arrow_stream(
    path: Path,
    what: str,
    open_reader: Callable[[], pa.RecordBatchReader],
    explain: Explain | None = None,
) -> pa.RecordBatchReader:
    """The batches of ``open_reader()``; Arrow's errors become ``{path} is not valid {what}: ...``.

    Arrow only fails once it reaches a bad record, so the error can surface while the batches
    are being written, long after this returns.
    """

    def refused(error: Exception, schema: pa.Schema | None, rows: int) -> CorruptInput:
        detail = explain(schema, rows) if explain else None
        return CorruptInput(f"{path.name} is not valid {what}: {detail or one_line(error)}")

    try:
        reader = open_reader()
    except (pa.ArrowException, OSError) as error:
        raise refused(error, None, 0) from None

    def batches() -> Iterator[pa.RecordBatch]:
        rows = 0
        try:
            for batch in reader:
                rows += batch.num_rows
                yield batch
        except (pa.ArrowException, OSError) as error:
            raise refused(error, reader.schema, rows) from None

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


class CsvConverter(FileFormat):
    format: ClassVar[str] = "csv"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        return arrow_stream(
            path,
            "CSV",
            lambda: pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE)),
        )

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        out = cast(BinaryIO, target)
        with (
            pacsv.CSVWriter(
                out, batches.schema, write_options=pacsv.WriteOptions(quoting_style="needed")
            ) as writer,
        ):
            for batch in batches:
                writer.write_batch(batch)


CONVERTER = CsvConverter()
