"""CSV files: column types inferred by Arrow, ragged rows refused with the line they are on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import pyarrow as pa
import pyarrow.csv as pacsv

from mreg.converters.base import FileFormat, ReadOptions, Target
from mreg.errors import CorruptInput, one_line

BLOCK_SIZE = 16 << 20


class CsvConverter(FileFormat):
    format: ClassVar[str] = "csv"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".csv",)

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        try:
            reader = pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=BLOCK_SIZE))
        except (pa.ArrowException, OSError) as error:
            raise CorruptInput(f"{path.name} is not valid CSV: {one_line(error)}") from None

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                yield from reader
            except (pa.ArrowException, OSError) as error:
                raise CorruptInput(f"{path.name} is not valid CSV: {one_line(error)}") from None

        return pa.RecordBatchReader.from_batches(reader.schema, batches())

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
