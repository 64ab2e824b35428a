"""Re-adding opaque files (``blob``, ``blob_dir``): chunks the previous version holds are not
written again, whichever fragment group they fell in.

A folder of many small files is one chunk per file, and fragments group chunks by the
megabyte: 1% of the files added or changed, spread over the folder, would touch nearly every
group. So chunks are reused as rows, the way ``row_reuse`` reuses a table's rows: a chunk is
known by its file name and digest, the previous version's chunks are found in its fragments
(only their names and digests are read back, never their bytes), runs of them keep their
fragments' data files behind a Lance deletion file, and only the chunks the previous version
lacks are written. Rows stay in the order the format lists its chunks, which is the order the
restore consumes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.repo import row_reuse, tensor_table
from mreg.repo.manifest import FileEntry, Fragment, Manifest, TensorInfo

if TYPE_CHECKING:
    from mreg.converters.base import TensorRecord
    from mreg.repo.work_tree import WorkTree


@dataclass(frozen=True)
class Reused:
    """The version's fragments and tensors in row order, and the data files they use (those
    written among them under ``stage``, not yet in the cache)."""

    fragments: tuple[Fragment, ...]
    tensors: tuple[TensorInfo, ...]
    kept: tuple[FileEntry, ...]


def eligible(repo: WorkTree, tensors: Sequence[TensorRecord], previous: Manifest | None) -> bool:
    """Whether the chunks of a re-add may be matched with ``previous``: chunks only, of a
    previous version in the tensor table whose data this cache holds."""
    return (
        previous is not None
        and bool(tensors)
        and all(t.is_chunk for t in tensors)
        and previous.kind == "model"
        and bool(previous.tensors)
        and previous.schema == tensor_table.schema_json()
        and not repo.cache.missing(previous.files)
    )


def write(
    repo: WorkTree,
    tensors: Sequence[TensorRecord],
    sums: Sequence[str],
    previous: Manifest,
    stage: Path,
) -> Reused | None:
    """The chunks as fragments reusing ``previous``'s rows, new ones written under ``stage``;
    None when too few chunks are shared for it to pay (the caller writes groups as usual)."""
    import pyarrow as pa

    new = [_key(t.name, digest) for t, digest in zip(tensors, sums, strict=True)]
    old, where = _previous_chunks(repo, previous)
    # A chunk is large (256 KiB to 4 MiB, or a whole small file): one reused is worth its
    # deletion file, unlike one short table row.
    runs = row_reuse.plan(new, old, where, min_run=1)
    if not row_reuse.worth_it(runs, previous, len(tensors)):
        return None
    fresh = [row for run in runs if run.fragment is None for row in run.rows]
    position = {row: n for n, row in enumerate(fresh)}
    table = pa.table(
        {
            "name": [tensors[i].name for i in fresh],
            "dtype": [tensors[i].dtype for i in fresh],
            "shape": [list(tensors[i].shape) for i in fresh],
            "digest": [sums[i] for i in fresh],
            "data": tensor_table.blob_array([tensors[i] for i in fresh]),
        },
        schema=tensor_table.schema(),
    )
    local = [
        row_reuse.Run(None, [position[r] for r in run.rows]) if run.fragment is None else run
        for run in runs
    ]
    written = row_reuse.write(local, table, previous, stage, tensor_table.schema())
    return Reused(written.fragments, _infos(tensors, sums, written.fragments), written.kept)


def _key(name: str, digest: str) -> bytes:
    return hashlib.sha256(f"{name}\0{digest}".encode()).digest()[:16]


def _previous_chunks(
    repo: WorkTree, previous: Manifest
) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The key of every chunk of ``previous`` and where it lies: names and digests only, never
    the chunks' bytes."""
    table, where = row_reuse.located_rows(repo, previous, ["name", "digest"])
    names, digests = table.column("name").to_pylist(), table.column("digest").to_pylist()
    return [_key(n, d) for n, d in zip(names, digests, strict=True)], where


def _infos(
    tensors: Sequence[TensorRecord], sums: Sequence[str], fragments: Sequence[Fragment]
) -> tuple[TensorInfo, ...]:
    """Each chunk's entry, with the fragment that shows it: rows are the chunks in order."""
    owners = [f.id for f in fragments for _ in range(f.rows)]
    return tuple(
        TensorInfo(t.name, t.shape, t.dtype, owner, digest)
        for t, digest, owner in zip(tensors, sums, owners, strict=True)
    )
