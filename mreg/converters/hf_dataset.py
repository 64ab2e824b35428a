"""Hugging Face ``datasets`` folders (``save_to_disk``): rows restored equal, split by split.

A ``Dataset`` folder holds ``state.json``, ``dataset_info.json`` and ``.arrow`` shards; a
``DatasetDict`` folder holds ``dataset_dict.json`` and one such folder per split. Both become one
table: a DatasetDict gains a ``split`` column (first), top-level ``Image`` columns become their
encoded bytes (``large_binary``), and Arrow extension types (``Array2D``...) their storage type.

Checkout writes ``save_to_disk`` of an equivalent Dataset or DatasetDict. What that needs (the
features, the layout, the split names in order) travels in the Arrow schema metadata under
``META_KEY``: the manifest keeps Lance's schema JSON, metadata included.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, cast

import pyarrow as pa
import pyarrow.compute as pc

from mreg.converters.base import FolderFormat, ReadOptions, Target, contained
from mreg.errors import CorruptInput, UnsupportedFormat, one_line

if TYPE_CHECKING:
    from datasets import Dataset, Features

META_KEY = b"mreg.hf_dataset"
SPLIT = "split"
BATCH_ROWS = 1000
DICT_MARKER = "dataset_dict.json"
DATASET_MARKERS = ("state.json", "dataset_info.json")


@dataclass(frozen=True)
class Recipe:
    """What checkout needs to rebuild the folder: ``layout`` is "dataset" or "dataset_dict"."""

    layout: str
    splits: tuple[str | None, ...]
    features: dict[str, Any]

    def dumps(self) -> str:
        # Not sorted: the order of features is the order of columns (and of struct fields).
        return json.dumps(
            {"layout": self.layout, "splits": list(self.splits), "features": self.features}
        )

    @classmethod
    def loads(cls, text: bytes) -> Recipe:
        doc = json.loads(text)
        recipe = cls(str(doc["layout"]), tuple(doc["splits"]), dict(doc["features"]))
        if recipe.layout not in ("dataset", "dataset_dict"):
            raise ValueError(f"unknown layout '{recipe.layout}'")
        if recipe.layout == "dataset" and len(recipe.splits) != 1:
            raise ValueError("a Dataset has exactly one split")
        return recipe


class HfDatasetConverter(FolderFormat):
    format: ClassVar[str] = "hf_dataset"
    kind: ClassVar[str] = "dataset"
    priority: ClassVar[int] = 40

    def matches(self, path: Path) -> bool:
        if not path.is_dir():
            return False
        if (path / DICT_MARKER).is_file():
            return True
        return all((path / marker).is_file() for marker in DATASET_MARKERS)

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        require_datasets()
        splits, layout = _load(path)
        features = _common_features(path, splits)
        with_split = layout == "dataset_dict"
        if with_split and SPLIT in features:
            raise UnsupportedFormat(
                f"{path.name}/ has a column named '{SPLIT}', which mreg needs for the split names"
            )
        recipe = Recipe(layout, tuple(name for name, _ in splits), features.to_dict())
        schema = _table_schema(features, with_split).with_metadata({META_KEY: recipe.dumps()})

        def batches() -> Iterator[pa.RecordBatch]:
            with _quiet():
                for name, dataset in splits:
                    yield from _split_batches(path, name, dataset, features, schema, options)

        return pa.RecordBatchReader.from_batches(schema, batches())

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        require_datasets()
        folder = cast(Path, target)
        recipe = _recipe(batches.schema)
        # The split files are memory-mapped by `datasets` while it saves: keep them on the
        # same disk as the target, outside it.
        with (
            _quiet(),
            tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{folder.name}-") as tmp,
        ):
            _save(batches, recipe, Path(tmp), folder)


def require_datasets() -> None:
    """UnsupportedFormat naming the install command when `datasets` is not installed."""
    if importlib.util.find_spec("datasets") is None:
        raise UnsupportedFormat(
            "Hugging Face `datasets` folders need the `datasets` package",
            hint="pip install 'mreg[huggingface]'",
        )


# -- reading ------------------------------------------------------------------------------


def _load(path: Path) -> tuple[list[tuple[str | None, Dataset]], str]:
    """The folder's splits in order, and its layout."""
    import datasets

    _check_contained(path)
    try:
        with _quiet():
            loaded = datasets.load_from_disk(str(path))
    except (OSError, ValueError, KeyError, IndexError, TypeError, pa.ArrowException) as error:
        raise CorruptInput(
            f"{path.name}/ is not a readable `datasets` folder: {one_line(error)}"
        ) from None
    if isinstance(loaded, datasets.DatasetDict):
        if not loaded:
            raise CorruptInput(f"{path.name}/ is a DatasetDict without splits")
        return list(loaded.items()), "dataset_dict"
    split = str(loaded.split) if loaded.split is not None else None
    return [(split, loaded)], "dataset"


def _check_contained(path: Path) -> None:
    """Every file `load_from_disk` will open lies inside ``path``: the split folders that
    dataset_dict.json names, the arrow files that each state.json names, none through a link
    (a hostile folder naming ``../secret.arrow`` would have its rows read into the cache)."""
    if (path / DICT_MARKER).is_file():
        document = _json(path, DICT_MARKER)
        splits = document.get("splits") if isinstance(document, dict) else None
        if not isinstance(splits, list) or not all(isinstance(s, str) for s in splits):
            raise _unreadable(path, f"{DICT_MARKER} has no valid list of splits")
        for split in splits:
            folder = contained(path, split, "split folder")
            if not folder.is_dir():
                raise _unreadable(path, f"split folder '{split}' is missing")
            _check_dataset_files(folder)
        return
    _check_dataset_files(path)


def _check_dataset_files(folder: Path) -> None:
    for marker in DATASET_MARKERS:
        contained(folder, marker, "file")
    state = _json(folder, "state.json")
    files = state.get("_data_files") if isinstance(state, dict) else None
    if not isinstance(files, list):
        raise _unreadable(folder, "state.json has no valid list of data files")
    for entry in files:
        name = entry.get("filename") if isinstance(entry, dict) else None
        if not isinstance(name, str) or not contained(folder, name, "arrow file").is_file():
            raise _unreadable(folder, f"state.json names a missing arrow file {name!r}")


def _json(folder: Path, name: str) -> Any:
    try:
        return json.loads(contained(folder, name, "file").read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise _unreadable(folder, f"{name}: {one_line(error)}") from None


def _unreadable(folder: Path, why: str) -> CorruptInput:
    return CorruptInput(f"{folder.name}/ is not a readable `datasets` folder: {why}")


def _common_features(path: Path, splits: list[tuple[str | None, Dataset]]) -> Features:
    features = splits[0][1].features
    for name, dataset in splits[1:]:
        if dataset.features != features:
            raise UnsupportedFormat(
                f"{path.name}/: split '{name}' has other columns or types than "
                f"'{splits[0][0]}'; mreg keeps one table with one schema"
            )
    return features


def _table_schema(features: Features, with_split: bool) -> pa.Schema:
    from datasets import Image

    fields = [
        pa.field(name, pa.large_binary() if isinstance(feature, Image) else _plain(arrow.type))
        for (name, feature), arrow in zip(features.items(), features.arrow_schema, strict=True)
    ]
    if with_split:
        fields.insert(0, pa.field(SPLIT, pa.string()))
    return pa.schema(fields)


def _plain(dtype: pa.DataType) -> pa.DataType:
    """``dtype`` with every Arrow extension type (datasets' ArrayND) replaced by its storage."""
    if isinstance(dtype, pa.ExtensionType):
        return _plain(dtype.storage_type)
    if pa.types.is_large_list(dtype):
        return pa.large_list(dtype.value_field.with_type(_plain(dtype.value_type)))
    if pa.types.is_fixed_size_list(dtype):
        return pa.list_(dtype.value_field.with_type(_plain(dtype.value_type)), dtype.list_size)
    if pa.types.is_list(dtype):
        return pa.list_(dtype.value_field.with_type(_plain(dtype.value_type)))
    if pa.types.is_struct(dtype):
        return pa.struct([field.with_type(_plain(field.type)) for field in dtype])
    return dtype


def _split_batches(
    folder: Path,
    split: str | None,
    dataset: Dataset,
    features: Features,
    schema: pa.Schema,
    options: ReadOptions,
) -> Iterator[pa.RecordBatch]:
    from datasets import Image

    first_row = 0
    for table in dataset.with_format("arrow").iter(batch_size=BATCH_ROWS):
        keep = [True] * len(table)
        columns: list[pa.Array | pa.ChunkedArray] = []
        if SPLIT in schema.names:
            columns.append(pa.array([split] * len(table), pa.string()))
        for name, feature in features.items():
            column = table.column(name)
            if isinstance(feature, Image):
                where = f"{split or folder.name}[{{}}].{name}"
                columns.append(_image_bytes(column, folder, where, first_row, keep, options))
            else:
                columns.append(column.cast(schema.field(name).type))
        out = pa.Table.from_arrays(columns, schema=schema)
        if not all(keep):
            out = out.filter(pa.array(keep))
        first_row += len(table)
        yield from out.to_batches()


def _image_bytes(
    column: pa.ChunkedArray,
    folder: Path,
    where: str,
    first_row: int,
    keep: list[bool],
    options: ReadOptions,
) -> pa.Array | pa.ChunkedArray:
    """Each image's encoded bytes; an image known only by its path is read from that file."""
    embedded = pc.struct_field(column, "bytes")
    if embedded.null_count == column.null_count:
        return embedded.cast(pa.large_binary())
    values: list[bytes | None] = []
    for index, item in enumerate(column.to_pylist()):
        if item is None or item.get("bytes") is not None:
            values.append(None if item is None else item["bytes"])
            continue
        data = _read_image_file(folder, item.get("path"))
        if data is None:
            if not options.skip_bad:
                raise CorruptInput(
                    f"{folder.name}/: image {where.format(first_row + index)} is not embedded "
                    f"and its file '{item.get('path')}' cannot be read",
                    hint="pass --skip-bad to leave such rows out",
                )
            options.skipped.append(where.format(first_row + index))
            keep[index] = False
        values.append(data)
    return pa.array(values, pa.large_binary())


def _read_image_file(folder: Path, path: str | None) -> bytes | None:
    """The bytes of an image file the row names, only inside the dataset's folder: a path
    from elsewhere (``/home/user/.ssh/id_rsa``) is refused, never read into the cache."""
    if not path:
        return None
    candidate = contained(folder, path, "image")
    with contextlib.suppress(OSError):
        descriptor = os.open(candidate, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with open(descriptor, "rb") as handle:
            return handle.read()
    return None


# -- writing ------------------------------------------------------------------------------


def _recipe(schema: pa.Schema) -> Recipe:
    raw = (schema.metadata or {}).get(META_KEY)
    if raw is None:
        raise CorruptInput(
            "the manifest's schema lacks the Hugging Face features this folder needs",
            hint="add the folder again with this mreg",
        )
    try:
        return Recipe.loads(raw)
    except (ValueError, KeyError, TypeError) as error:
        raise CorruptInput(f"the manifest's Hugging Face recipe is malformed: {error}") from None


def _save(batches: pa.RecordBatchReader, recipe: Recipe, tmp: Path, target: Path) -> None:
    """Write each split's rows to an Arrow file in ``tmp``, then ``save_to_disk`` them all."""
    import datasets

    features = datasets.Features.from_dict(recipe.features)
    files = _split_files(batches, recipe, features, tmp)
    info = datasets.DatasetInfo(features=features)
    splits = {
        name: datasets.Dataset.from_file(
            str(path), info=info, split=datasets.NamedSplit(name) if name else None
        )
        for name, path in files.items()
    }
    if recipe.layout == "dataset_dict":
        datasets.DatasetDict(cast(dict[str, Any], splits)).save_to_disk(str(target))
    else:
        next(iter(splits.values())).save_to_disk(str(target))


def _split_files(
    batches: pa.RecordBatchReader, recipe: Recipe, features: Features, tmp: Path
) -> dict[str | None, Path]:
    """One Arrow stream file per split, in the recipe's split order (then any new split)."""
    from datasets.table import cast_table_to_features

    order: list[str | None] = list(recipe.splits)
    writers: dict[str | None, pa.RecordBatchStreamWriter] = {}
    files: dict[str | None, Path] = {}

    def writer(split: str | None) -> pa.RecordBatchStreamWriter:
        if split not in writers:
            files[split] = tmp / f"{len(files):05d}.arrow"
            writers[split] = pa.ipc.new_stream(str(files[split]), features.arrow_schema)
        return writers[split]

    try:
        for name in order:
            writer(name)
        for batch in batches:
            for split, rows in _by_split(pa.Table.from_batches([batch]), recipe):
                if split not in order:
                    order.append(split)
                writer(split).write_table(cast_table_to_features(rows, features))
    finally:
        for open_writer in writers.values():
            open_writer.close()
    return {split: files[split] for split in order}


def _by_split(table: pa.Table, recipe: Recipe) -> Iterator[tuple[str | None, pa.Table]]:
    if recipe.layout != "dataset_dict":
        yield recipe.splits[0], table.replace_schema_metadata(None)
        return
    names = table.column(SPLIT)
    rest = table.drop_columns([SPLIT]).replace_schema_metadata(None)
    for split in pc.unique(names).to_pylist():
        yield str(split), rest.filter(pc.equal(names, split))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No `datasets` progress bars while mreg converts (mreg draws its own)."""
    from datasets.utils import (
        are_progress_bars_disabled,
        disable_progress_bars,
        enable_progress_bars,
    )

    was_disabled = are_progress_bars_disabled()
    disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            enable_progress_bars()


CONVERTER = HfDatasetConverter()
