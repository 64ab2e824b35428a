"""Re-adding an edited table: rows the previous version already holds are not written again.

Rows are matched by content, never by file times: a digest of every row's values, those of the
new file and those of the previous version (read back from the cache). The new version is a
list of pieces in the new file's row order: runs of rows found in one fragment of the previous
version, which reuse that fragment's data files and hide the rows left out with a Lance deletion
file (a few bytes per hidden row), and runs of new rows, written as new fragments. So appended
rows cost only themselves, deleted rows a deletion file, and a changed row in the middle a
fragment of its own plus a deletion file on each side of it. The same holds for folders read as
tables (images, parquet folders, text files, HF datasets): a file added, changed or removed is a
row.
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.repo.manifest import DELETIONS, FileEntry, Fragment, Manifest

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.repo.work_tree import WorkTree

# A shorter run of old rows is written again: each piece costs a deletion file and an entry in
# the manifest, and a table cut into single rows would read slowly.
MIN_RUN = 8
# A previous version larger than this is not read back to be compared (it would be held in
# memory with the new rows).
MAX_PREVIOUS_BYTES = 2 << 30
# Pieces beyond the previous version's fragments plus this many (or one per this many rows:
# 1% of the rows changed, scattered, make one per 50) mean the rows were shuffled rather than
# edited: the table is written whole instead.
MAX_EXTRA_PIECES = 64
ROWS_PER_PIECE = 16


@dataclass
class Run:
    """Consecutive rows of the new table: from ``fragment`` of the previous version (its
    position there) at physical ``offsets``, or new rows (``fragment`` None)."""

    fragment: int | None
    rows: list[int] = field(default_factory=list)  # indices into the new table
    offsets: list[int] = field(default_factory=list)


@dataclass(frozen=True)
class Reused:
    """What ``write`` made: the version's fragments in row order, and the data files they use
    (those it wrote among them, under ``stage``, not yet in the cache)."""

    fragments: tuple[Fragment, ...]
    kept: tuple[FileEntry, ...]


def eligible(repo: WorkTree, previous: Manifest | None, schema: str) -> bool:
    """Whether a re-add may compare its rows with ``previous``: a table with the same columns
    whose data this cache holds."""
    return (
        previous is not None
        and previous.kind == "dataset"
        and previous.schema == schema
        and previous.rows > 0
        and previous.data_size <= MAX_PREVIOUS_BYTES
        and not repo.cache.missing(previous.files)
    )


def row_digests(table: pa.Table) -> list[bytes]:
    """A 16-byte digest of each row's values, in order."""
    columns = [_cells(table.column(i)) for i in range(table.num_columns)]
    digests = []
    for cells in zip(*columns, strict=True):
        h = hashlib.sha256()
        for cell in cells:
            h.update(len(cell).to_bytes(8, "little"))
            h.update(cell)
        digests.append(h.digest()[:16])
    return digests if columns else [b""] * table.num_rows


def _cells(column: pa.ChunkedArray) -> list[bytes]:
    import pyarrow as pa

    values = column.to_pylist()
    kind = column.type
    if pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [b"\0" if v is None else b"\1" + v for v in values]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return [b"\0" if v is None else b"\1" + v.encode() for v in values]
    # repr is exact for floats, and names every other value Arrow converts to Python.
    return [repr(v).encode() for v in values]


def previous_rows(repo: WorkTree, previous: Manifest) -> tuple[list[bytes], list[tuple[int, int]]]:
    """The digest of every row of ``previous``, and where it lies: (fragment position, physical
    offset in that fragment's data)."""
    table, where = located_rows(repo, previous)
    return row_digests(table), where


def located_rows(
    repo: WorkTree, previous: Manifest, columns: list[str] | None = None
) -> tuple[pa.Table, list[tuple[int, int]]]:
    """The rows of ``previous`` (only ``columns``, when given), and where each lies: (fragment
    position, physical offset in that fragment's data; a fragment reused before hides rows
    behind its deletion file)."""
    import numpy as np

    dataset = repo.cache.open(previous)
    positions = {f.fragment_id: n for n, f in enumerate(dataset.get_fragments())}
    table = dataset.to_table(columns=columns, with_row_address=True)
    addresses = table.column("_rowaddr").to_numpy()
    fragment_ids = (addresses >> np.uint64(32)).tolist()
    offsets = (addresses & np.uint64(0xFFFFFFFF)).tolist()
    where = [(positions[f], o) for f, o in zip(fragment_ids, offsets, strict=True)]
    return table.drop_columns(["_rowaddr"]), where


def plan(
    new: list[bytes], old: list[bytes], where: list[tuple[int, int]], min_run: int = MIN_RUN
) -> list[Run]:
    """The runs that make the new rows, in order: each new row is taken from the previous
    version where it is found there (continuing the current run when it can), else new; a
    run of fewer than ``min_run`` old rows is written again."""
    found: dict[bytes, deque[int]] = {}
    for index, digest in enumerate(old):
        found.setdefault(digest, deque()).append(index)
    runs: list[Run] = []
    last = -1
    for row, digest in enumerate(new):
        queue = found.get(digest)
        if not queue:
            if not runs or runs[-1].fragment is not None:
                runs.append(Run(None))
            runs[-1].rows.append(row)
            continue
        index = queue.popleft()
        fragment, offset = where[index]
        current = runs[-1] if runs else None
        if current is None or current.fragment != fragment or index < last:
            current = Run(fragment)
            runs.append(current)
        current.rows.append(row)
        current.offsets.append(offset)
        last = index
    return _merged(runs, min_run)


def _merged(runs: list[Run], min_run: int) -> list[Run]:
    """``runs`` with short runs of old rows made new, and neighbouring new runs joined."""
    merged: list[Run] = []
    for run in runs:
        if run.fragment is not None and len(run.rows) < min_run:
            run = Run(None, run.rows)
        if run.fragment is None and merged and merged[-1].fragment is None:
            merged[-1].rows.extend(run.rows)
        else:
            merged.append(run)
    return merged


def worth_it(runs: list[Run], previous: Manifest, rows: int) -> bool:
    """Whether the plan reuses rows without cutting the table into too many pieces."""
    if not any(r.fragment is not None for r in runs):
        return False
    limit = len(previous.fragments) + max(MAX_EXTRA_PIECES, rows // ROWS_PER_PIECE)
    return len(runs) <= limit


def write(
    runs: list[Run], table: pa.Table, previous: Manifest, stage: Path, schema: pa.Schema
) -> Reused:
    """Write the new runs' rows and the deletion files of the reused runs under ``stage``."""
    from lance.fragment import write_fragments

    fragments: list[Fragment] = []
    kept: list[FileEntry] = []
    for run in runs:
        if run.fragment is None:
            for metadata in write_fragments(
                table.take(run.rows), str(stage), schema=schema, mode="create"
            ):
                document = metadata.to_json()
                document["id"] = len(fragments)
                fragments.append(
                    Fragment(
                        len(fragments),
                        int(metadata.physical_rows),
                        json.dumps(document, sort_keys=True),
                    )
                )
            continue
        old = previous.fragments[run.fragment]
        fragment = _reuse(old, len(fragments), run.offsets, stage)
        fragments.append(fragment)
        kept += [f for f in previous.files_of(old) if f.path != old.deletion_file()]
    return Reused(tuple(fragments), tuple(kept))


def _reuse(old: Fragment, fragment_id: int, offsets: list[int], stage: Path) -> Fragment:
    """``old``'s data as fragment ``fragment_id``, showing only the rows at ``offsets``."""
    document = json.loads(old.metadata)
    document["id"] = fragment_id
    shown = set(offsets)
    hidden = [o for o in range(int(document["physical_rows"])) if o not in shown]
    document["deletion_file"] = _deletion_file(stage, fragment_id, hidden) if hidden else None
    return Fragment(fragment_id, len(offsets), json.dumps(document, sort_keys=True))


def _deletion_file(stage: Path, fragment_id: int, hidden: list[int]) -> dict[str, object]:
    """Write the Lance deletion file hiding the rows at ``hidden`` of fragment ``fragment_id``
    (named by its content: the same rows hidden give the same file)."""
    read_version = 1
    data = roaring(hidden)
    digest = hashlib.sha256(f"{fragment_id}:".encode() + data).digest()
    file_id = int.from_bytes(digest[:8], "little") >> 1  # Lance reads it as a u64
    path = stage / DELETIONS / f"{fragment_id}-{read_version}-{file_id}.bin"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {
        "read_version": read_version,
        "id": file_id,
        "file_type": "bitmap",
        "num_deleted_rows": len(hidden),
        "base_id": None,
    }


def roaring(values: list[int]) -> bytes:
    """``values`` (sorted, distinct, below 2**32, at least one) as a Roaring bitmap in its
    portable format, what Lance reads from a "bitmap" deletion file: a run of hidden rows costs
    4 bytes, so a piece showing a few rows of a large fragment hides the rest in a few bytes."""
    import struct

    groups: dict[int, list[int]] = {}
    for value in values:
        groups.setdefault(value >> 16, []).append(value & 0xFFFF)
    keys = sorted(groups)
    bodies: list[bytes] = []
    is_run: list[bool] = []
    for key in keys:
        low = groups[key]
        runs = _runs(low)
        run_size = 2 + 4 * len(runs)
        plain_size = 2 * len(low) if len(low) <= 4096 else 8192
        if run_size < plain_size:
            body = struct.pack(f"<H{2 * len(runs)}H", len(runs), *(v for r in runs for v in r))
        elif len(low) <= 4096:
            body = struct.pack(f"<{len(low)}H", *low)
        else:
            bits = bytearray(8192)
            for v in low:
                bits[v >> 3] |= 1 << (v & 7)
            body = bytes(bits)
        bodies.append(body)
        is_run.append(run_size < plain_size)
    count = len(keys)
    header = struct.pack("<I", 12347 | ((count - 1) << 16))
    flags = bytearray((count + 7) // 8)
    for index, run in enumerate(is_run):
        if run:
            flags[index >> 3] |= 1 << (index & 7)
    header += bytes(flags)
    header += b"".join(struct.pack("<HH", k, len(groups[k]) - 1) for k in keys)
    if count >= 4:  # offsets of each container, when there are this many
        offset = len(header) + 4 * count
        for body in bodies:
            header += struct.pack("<I", offset)
            offset += len(body)
    return header + b"".join(bodies)


def _runs(values: list[int]) -> list[tuple[int, int]]:
    """Sorted ``values`` as (start, length - 1) runs."""
    runs: list[tuple[int, int]] = []
    for value in values:
        if runs and runs[-1][0] + runs[-1][1] + 1 == value:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((value, 0))
    return runs
