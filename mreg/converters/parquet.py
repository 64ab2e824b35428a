"""Parquet files: rows streamed in batches, restored with equal rows and types."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import pyarrow as pa

from mreg.converters.base import FileFormat, ReadOptions, Target
from mreg.errors import CorruptInput, one_line


class ParquetConverter(FileFormat):
    format: ClassVar[str] = "parquet"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".parquet", ".pq")

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        import pyarrow.parquet as pq  # here: the converter registry imports every module

        try:
            parquet = pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as error:
            raise CorruptInput(
                f"{path.name} is truncated or not a Parquet file: {one_line(error)}"
            ) from None
        schema = parquet.schema_arrow.remove_metadata()

        def batches() -> Iterator[pa.RecordBatch]:
            try:
                for batch in parquet.iter_batches(batch_size=65536):
                    yield batch.replace_schema_metadata(None)
            except (pa.ArrowException, OSError) as error:
                raise CorruptInput(f"{path.name} is corrupt: {one_line(error)}") from None

        return pa.RecordBatchReader.from_batches(schema, batches())

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        import pyarrow.parquet as pq

        out = cast(BinaryIO, target)
        with pq.ParquetWriter(out, batches.schema) as writer:
            for batch in batches:
                writer.write_batch(batch)


CONVERTER = ParquetConverter()
