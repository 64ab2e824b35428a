"""Folders of Parquet files, flat or hive-partitioned (``year=2024/month=1/part-0.parquet``).

The rows are read with ``pyarrow.dataset``; partition values become columns (after the files'
own columns, as Arrow puts them). The partition columns, in folder order, are kept in the schema
metadata, so checkout writes the same ``key=value`` folders back. File names and the split of
rows between files are not kept: the restore is "equivalent" (equal rows, types, partitioning).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, cast

import pyarrow as pa

from mreg.converters.base import FolderFormat, ReadOptions, Target
from mreg.converters.parquet import ParquetConverter
from mreg.errors import CorruptInput, UnsupportedFormat, one_line

if TYPE_CHECKING:
    # Imported where used: pyarrow.dataset brings pandas, 0.2 s that every command looking up
    # a converter (checkout, pull, status) would pay.
    import pyarrow.dataset as ds

METADATA_KEY = b"mreg.parquet_dir"
BATCH_ROWS = 65536
# pyarrow refuses to write more than 1024 partitions by default; a dataset that has them
# must come back whole.
MAX_PARTITIONS = 1 << 20


class ParquetDirConverter(FolderFormat):
    format: ClassVar[str] = "parquet_dir"
    kind: ClassVar[str] = "dataset"
    priority: ClassVar[int] = 20

    def matches(self, path: Path) -> bool:
        return bool(_parquet_files(path))

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        return self.read_files(path, self.shard_units(path), options)

    def shard_units(self, path: Path) -> list[str]:
        """The Parquet files of ``path`` in row order: what a distributed add splits into
        shards."""
        files = _parquet_files(path)
        if not files:
            raise UnsupportedFormat(f"{path.name}/ holds files other than Parquet, or none")
        return [f.relative_to(path).as_posix() for f in files]

    def read_files(
        self, path: Path, relpaths: list[str], options: ReadOptions
    ) -> pa.RecordBatchReader:
        """The rows of the Parquet files ``relpaths`` (from ``shard_units``), in order."""
        files = [path / relpath for relpath in relpaths]
        keys = _partition_keys(path, files)
        _check_same_columns(path, files)
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(
                [str(f) for f in files],
                format="parquet",
                partitioning="hive" if keys else None,
                partition_base_dir=str(path),
            )
        except (pa.ArrowException, OSError) as error:
            raise CorruptInput(f"{path.name}/ cannot be read: {one_line(error)}") from None
        layout = json.dumps({"partitioning": keys})
        schema = dataset.schema.remove_metadata().with_metadata({METADATA_KEY: layout})
        return pa.RecordBatchReader.from_batches(schema, _batches(path, dataset))

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        import pyarrow.dataset as ds
        import pyarrow.parquet as pq

        folder = cast(Path, target)
        layout = json.loads((batches.schema.metadata or {}).get(METADATA_KEY, b"{}"))
        # The restore info is mreg's, not the data's: the files get the plain schema.
        schema = batches.schema.remove_metadata()
        plain = pa.RecordBatchReader.from_batches(
            schema, (b.replace_schema_metadata(None) for b in batches)
        )
        keys = layout.get("partitioning") or []
        partitioning = (
            ds.partitioning(pa.schema([schema.field(k) for k in keys]), flavor="hive")
            if keys
            else None
        )
        ds.write_dataset(
            plain,
            folder,
            format="parquet",
            partitioning=partitioning,
            basename_template="part-{i}.parquet",
            preserve_order=True,
            max_partitions=MAX_PARTITIONS,
        )
        if not any(folder.iterdir()):
            # No rows: one empty file keeps the columns (and the folder recognisable).
            pq.write_table(schema.empty_table(), folder / "part-0.parquet")


def _parquet_files(root: Path) -> list[Path]:
    """Every file under ``root`` in path order, or [] unless each one is a Parquet file."""
    suffixes = ParquetConverter.suffixes
    files = []
    for folder, subfolders, names in os.walk(root):
        # os.walk does not enter linked folders: their files would be left out unseen.
        if any((Path(folder) / sub).is_symlink() for sub in subfolders):
            return []
        for name in names:
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file() or path.suffix.lower() not in suffixes:
                return []
            files.append(path)
    return sorted(files, key=lambda p: p.relative_to(root).as_posix())


def _partition_keys(root: Path, files: list[Path]) -> list[str]:
    """The hive partition columns, the same for every file; refuses any other folder layout."""
    layouts: dict[tuple[str, ...], Path] = {}
    for path in files:
        rel = path.relative_to(root)
        keys = []
        for part in rel.parts[:-1]:
            key, sep, _ = part.partition("=")
            if not sep or not key:
                raise UnsupportedFormat(
                    f"{root.name}/{rel.as_posix()}: the folder '{part}' is not a hive "
                    "partition (key=value)",
                    hint="keep Parquet files at the top of the folder or in key=value folders",
                )
            keys.append(key)
        layouts.setdefault(tuple(keys), rel)
    if len(layouts) > 1:
        first, second = (p.as_posix() for p in list(layouts.values())[:2])
        raise UnsupportedFormat(
            f"{root.name}/ mixes partition layouts: {first} and {second}",
            hint="every file needs the same key=value folders, in the same order",
        )
    return list(next(iter(layouts)))


def _check_same_columns(root: Path, files: list[Path]) -> None:
    """pyarrow.dataset would take the first file's columns and quietly drop others' extras."""
    first = _columns(root, files[0])
    for path in files[1:]:
        columns = _columns(root, path)
        if columns != first:
            raise CorruptInput(
                f"{root.name}/{path.relative_to(root).as_posix()} has columns "
                f"({_describe(columns)}) that differ from those of "
                f"{files[0].relative_to(root).as_posix()} ({_describe(first)})"
            )


def _columns(root: Path, path: Path) -> list[tuple[str, pa.DataType]]:
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        raise CorruptInput(
            f"{root.name}/{path.relative_to(root).as_posix()} is truncated or not a "
            f"Parquet file: {one_line(error)}"
        ) from None
    return [(field.name, field.type) for field in schema]


def _describe(columns: list[tuple[str, pa.DataType]]) -> str:
    return ", ".join(f"{name}:{type_}" for name, type_ in columns)


def _batches(root: Path, dataset: ds.Dataset) -> Iterator[pa.RecordBatch]:
    try:
        for batch in dataset.to_batches(batch_size=BATCH_ROWS):
            yield batch.replace_schema_metadata(None)
    except (pa.ArrowException, OSError) as error:
        raise CorruptInput(f"{root.name}/ is corrupt: {one_line(error)}") from None


CONVERTER = ParquetDirConverter()
