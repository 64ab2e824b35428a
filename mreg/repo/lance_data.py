"""The Lance data of a new version: a dataset's rows or a model's tensors written as fragments
into the cache, reusing what a previous version (or another model) holds already."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, cast

import lance
import pyarrow as pa
from lance.fragment import write_fragments

from mreg import converters
from mreg.converters.base import DatasetConverter, ModelConverter, ReadOptions, TensorRecord
from mreg.errors import MregError
from mreg.progress import bar
from mreg.repo import chunk_reuse, row_reuse, tensor_table
from mreg.repo import manifest as manifests
from mreg.repo.manifest import ColumnInfo, FileEntry, Fragment, Manifest, TensorInfo

if TYPE_CHECKING:
    from mreg.repo.add_options import Engine
    from mreg.repo.work_tree import WorkTree


@dataclass(frozen=True)
class Converted:
    """A new version's Lance data, and what the manifest says of it."""

    fragments: tuple[Fragment, ...]
    files: tuple[FileEntry, ...]
    new_bytes: int
    tensors: tuple[TensorInfo, ...] = ()
    columns: tuple[ColumnInfo, ...] = ()
    schema: str = ""
    restore: manifests.Restore = "equivalent"
    restore_info: str = ""
    info: tuple[tuple[str, str], ...] = ()


def convert(
    repo: WorkTree,
    converter: converters.Converter,
    path: Path,
    previous: Manifest | None,
    donors: list[Manifest],
    options: ReadOptions,
    engine: Engine | None = None,
) -> Converted:
    """``previous`` lends a table its rows; ``donors`` (``previous`` first) lend a model its
    unchanged tensors."""
    if converter.kind == "dataset":
        reader = cast(DatasetConverter, converter).read(path, options)
        if engine is not None:  # Ray tasks write the fragments (no row reuse there yet)
            written = engine.write_table(
                repo, cast(DatasetConverter, converter), path, reader.schema, 0, options
            )
            return replace(table_data(*written, reader.schema), restore=converter.restore)
        schema = json.dumps(lance.schema_to_json(reader.schema), sort_keys=True)
        if previous is not None and row_reuse.eligible(repo, previous, schema):
            converted = _write_reusing(repo, reader, previous)
        else:
            converted = write_table(repo, reader, reader.schema, first_id=0)
        return replace(converted, restore=converter.restore)
    return _write_model(repo, cast(ModelConverter, converter), path, previous, donors, options)


def _write_model(
    repo: WorkTree,
    converter: ModelConverter,
    path: Path,
    previous: Manifest | None,
    donors: list[Manifest],
    options: ReadOptions,
) -> Converted:
    source = converter.read(path, options)
    # Rows hold tensors first, then side files, then chunks: the order the manifest lists them.
    tensors = [t for t in source.tensors if not (t.is_file or t.is_chunk)]
    tensors += [t for t in source.tensors if t.is_file] + [t for t in source.tensors if t.is_chunk]
    sums = tensor_table.digests(tensors)
    return replace(
        _write_tensors(repo, tensors, sums, previous, donors, path.name),
        schema=tensor_table.schema_json(),
        restore=source.restore,
        restore_info=source.restore_info,
        info=tuple(sorted(converter.describe(source).items())),
    )


def _write_tensors(
    repo: WorkTree,
    tensors: list[TensorRecord],
    sums: list[str],
    previous: Manifest | None,
    donors: list[Manifest],
    label: str,
) -> Converted:
    """The tensors' fragments: the previous version's chunks reused when it has chunks, else
    the donors' unchanged groups reused and the other groups written."""
    if previous is not None and chunk_reuse.eligible(repo, tensors, previous):
        with repo.cache.staging(".lance") as stage:
            reused = chunk_reuse.write(repo, tensors, sums, previous, stage)
            written = repo.cache.ingest(stage, staged_files(stage)) if reused else []
        if reused is not None:
            return Converted(
                fragments=reused.fragments,
                files=_joined(reused.kept, written),
                new_bytes=sum(f.size for f in written),
                tensors=reused.tensors,
            )
    reusable = tensor_table.reusable_fragments(donors, repo.cache.has)
    fragments: list[Fragment] = []
    files: dict[str, FileEntry] = {}
    infos: list[TensorInfo] = []
    total = sum(len(t.data) for t in tensors)
    with repo.cache.staging(".lance") as stage, bar(f"convert {label}", total) as advance:
        for fragment_id, group in enumerate(tensor_table.plan_groups(tensors, sums)):
            group_infos = [
                TensorInfo(
                    tensors[i].name, tensors[i].shape, tensors[i].dtype, fragment_id, sums[i]
                )
                for i in group
            ]
            old = reusable.get(tensor_table.group_key(group_infos))
            if old is not None:
                metadata = old[0].metadata
                files.update({f.path: f for f in old[1]})
            else:
                metadata = tensor_table.write_group(
                    stage, [tensors[i] for i in group], [sums[i] for i in group]
                )
            fragments.append(
                Fragment(fragment_id, len(group), tensor_table.renumber(metadata, fragment_id))
            )
            infos.extend(group_infos)
            advance(sum(len(tensors[i].data) for i in group))
        new_files = repo.cache.ingest(stage, staged_files(stage))
    return Converted(
        fragments=tuple(fragments),
        files=_joined(tuple(files.values()), new_files),
        new_bytes=sum(f.size for f in new_files),
        tensors=tuple(infos),
    )


def write_table(
    repo: WorkTree, reader: pa.RecordBatchReader, schema: pa.Schema, first_id: int
) -> Converted:
    with repo.cache.staging(".lance") as stage:
        fragments = numbered(stage_fragments(reader, stage, schema), first_id)
        files = repo.cache.ingest(stage, staged_files(stage))
    return table_data(fragments, files, schema)


def stage_fragments(reader: pa.RecordBatchReader, stage: Path, schema: pa.Schema) -> list[str]:
    """Write the rows of ``reader`` as Lance data files under ``stage/data``; the metadata JSON
    of each fragment written, in row order. The converter's own error when a batch fails."""
    guarded, errors = _keep_errors(reader)
    try:
        written = write_fragments(guarded, str(stage), schema=schema, mode="create")
    except OSError:
        # Lance wraps what the batch generator raised; the converter's own error is the
        # one-line message the user needs.
        if errors:
            raise errors[0] from None
        raise
    return [json.dumps(meta.to_json()) for meta in written]


def numbered(metadata: list[str], first_id: int) -> list[Fragment]:
    """Fragments of the metadata JSON ``stage_fragments`` returned, numbered from ``first_id``."""
    fragments = []
    for n, text in enumerate(metadata):
        rows = int(json.loads(text)["physical_rows"])
        fragments.append(Fragment(first_id + n, rows, tensor_table.renumber(text, first_id + n)))
    return fragments


def table_data(
    fragments: Sequence[Fragment],
    written: Sequence[FileEntry],
    schema: pa.Schema,
    kept: Sequence[FileEntry] = (),
) -> Converted:
    """A table's Lance data: ``written`` new to the cache, ``kept`` reused from a version."""
    return Converted(
        fragments=tuple(fragments),
        files=_joined(kept, written),
        new_bytes=sum(f.size for f in written),
        columns=tuple(ColumnInfo(f.name, str(f.type)) for f in schema),
        schema=json.dumps(lance.schema_to_json(schema), sort_keys=True),
    )


def _write_reusing(repo: WorkTree, reader: pa.RecordBatchReader, previous: Manifest) -> Converted:
    """``write_table`` for a re-added table: rows ``previous`` holds are reused, not written
    again (see ``row_reuse``)."""
    table = reader.read_all()
    old, where = row_reuse.previous_rows(repo, previous)
    runs = row_reuse.plan(row_reuse.row_digests(table), old, where)
    if not row_reuse.worth_it(runs, previous, table.num_rows):
        batches = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        return write_table(repo, batches, table.schema, first_id=0)
    with repo.cache.staging(".lance") as stage:
        reused = row_reuse.write(runs, table, previous, stage, table.schema)
        written = repo.cache.ingest(stage, staged_files(stage))
    return table_data(reused.fragments, written, table.schema, kept=reused.kept)


def _joined(kept: Sequence[FileEntry], written: Sequence[FileEntry]) -> tuple[FileEntry, ...]:
    """The data files of a version that reuses ``kept`` and wrote ``written``, once each."""
    files = {f.path: f for f in (*kept, *written)}
    return tuple(sorted(files.values(), key=lambda f: f.path))


def _keep_errors(reader: pa.RecordBatchReader) -> tuple[pa.RecordBatchReader, list[MregError]]:
    """``reader`` again, remembering any MregError its batches raise."""
    errors: list[MregError] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except MregError as error:
            errors.append(error)
            raise

    return pa.RecordBatchReader.from_batches(reader.schema, batches()), errors


def staged_files(stage: Path) -> list[str]:
    """The data files a Lance write left under ``stage``, relative to it."""
    data = stage / "data"
    if not data.exists():
        return []
    return [p.relative_to(stage).as_posix() for p in data.rglob("*") if p.is_file()]
