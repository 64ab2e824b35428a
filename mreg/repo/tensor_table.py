"""How a model's tensors are laid out in Lance (read back by ``tensor_reader``).

One row per tensor (name, dtype, shape, digest, data) with the bytes in a blob column. A tensor
of ``TENSOR_GROUP_BYTES`` or more has a fragment of its own (whose blob file holds exactly its
bytes); smaller tensors are grouped into fragments of at most that size, with boundaries after
tensors whose name hashes to 0 mod ``NAME_CUT``, so they depend on names, not positions, and
stay put when a tensor elsewhere changes. A re-added model reuses every fragment whose tensors
are unchanged (keyed by name, dtype, shape and digest), from its previous version or from any
other model in the work tree: a change of k tensors writes, and pushes, about those k tensors.

Chunks of opaque files (``CHUNK_DTYPE``) share their file's name, so their groups are cut by
content instead: after a chunk whose digest is 0 mod ``CHUNK_CUT`` once the group holds
``CHUNK_GROUP_MIN`` bytes. Groups after a changed chunk then fall where they fell before.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.converters.base import TensorRecord
from mreg.errors import short_write_fault
from mreg.repo.manifest import FileEntry, Fragment, Manifest, TensorInfo

if TYPE_CHECKING:
    # Imported where used: pyarrow and numpy cost about 0.1 s to import, and reading tensors
    # back (``tensor_reader``) needs them only for tensors that go through Lance.
    import pyarrow as pa

GROUP_BYTES = 64 << 20
# Small enough that retraining a small head re-uploads little besides the head (a group of
# small tensors), large enough that a model of many tiny tensors keeps few fragments.
TENSOR_GROUP_BYTES = 256 << 10
NAME_CUT = 16
CHUNK_CUT = 4
CHUNK_GROUP_MIN = 4 << 20
GroupKey = tuple[tuple[str, str, tuple[int, ...], str], ...]


@functools.cache
def schema() -> pa.Schema:
    """The tensor table's Arrow schema: one row per tensor, its bytes blob-encoded."""
    import pyarrow as pa

    return pa.schema(
        [
            pa.field("name", pa.string()),
            pa.field("dtype", pa.string()),
            pa.field("shape", pa.list_(pa.int64())),
            pa.field("digest", pa.string()),
            pa.field("data", pa.large_binary(), metadata={"lance-encoding:blob": "true"}),
        ]
    )


def digests(tensors: Sequence[TensorRecord]) -> list[str]:
    """sha256 of every tensor's bytes, on all cores (hashlib releases the GIL)."""
    with ThreadPoolExecutor() as pool:
        return list(pool.map(lambda t: hashlib.sha256(t.data).hexdigest(), tensors))


def plan_groups(tensors: Sequence[TensorRecord], sums: Sequence[str]) -> list[list[int]]:
    """Consecutive runs of tensor indices, one run per fragment (``sums``: their digests)."""
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, tensor in enumerate(tensors):
        limit = GROUP_BYTES if tensor.is_chunk else TENSOR_GROUP_BYTES
        if current and size + len(tensor.data) > limit:
            groups.append(current)
            current, size = [], 0
        current.append(index)
        size += len(tensor.data)
        if _chunk_cut(sums[index], size) if tensor.is_chunk else _name_cut(tensor.name):
            groups.append(current)
            current, size = [], 0
    if current:
        groups.append(current)
    return groups


def _name_cut(name: str) -> bool:
    return hashlib.sha256(name.encode()).digest()[0] % NAME_CUT == 0


def _chunk_cut(digest: str, group_size: int) -> bool:
    return group_size >= CHUNK_GROUP_MIN and int(digest[:8], 16) % CHUNK_CUT == 0


def group_key(infos: Sequence[TensorInfo]) -> GroupKey:
    return tuple((t.name, t.dtype, t.shape, t.digest) for t in infos)


def reusable_fragments(
    donors: Iterable[Manifest], has: Callable[[FileEntry], bool]
) -> dict[GroupKey, tuple[Fragment, list[FileEntry]]]:
    """The fragments of the model manifests ``donors`` whose files the cache ``has``, with
    those files, keyed by exactly which tensors each holds; the first donor wins a tie."""
    found: dict[GroupKey, tuple[Fragment, list[FileEntry]]] = {}
    for donor in donors:
        if donor.kind != "model":
            continue
        by_fragment: dict[int, list[TensorInfo]] = {}
        for tensor in donor.tensors:
            by_fragment.setdefault(tensor.fragment, []).append(tensor)
        for fragment in donor.fragments:
            key = group_key(by_fragment.get(fragment.id, []))
            if key in found:
                continue
            files = donor.files_of(fragment)
            if all(has(f) for f in files):
                found[key] = (fragment, files)
    return found


def write_group(stage: Path, tensors: Sequence[TensorRecord], sums: Sequence[str]) -> str:
    """Write one fragment of tensors into the staging dataset; returns its metadata JSON."""
    import pyarrow as pa
    from lance.fragment import write_fragments

    table = pa.table(
        {
            "name": [t.name for t in tensors],
            "dtype": [t.dtype for t in tensors],
            "shape": [list(t.shape) for t in tensors],
            "digest": list(sums),
            "data": blob_array(tensors),
        },
        schema=schema(),
    )
    try:
        (metadata,) = write_fragments(
            table, str(stage), schema=schema(), mode="create", max_rows_per_file=1 << 30
        )
    except OSError as error:
        full = short_write_fault(error, stage, table.nbytes)
        if full is None:
            raise
        raise full from error
    return json.dumps(metadata.to_json(), sort_keys=True)


def blob_array(tensors: Sequence[TensorRecord]) -> pa.Array:
    """The tensors' bytes as one Arrow array, without a copy when they lie back to back in
    memory (a memory-mapped safetensors file), else copied once."""
    import numpy as np
    import pyarrow as pa

    views = [np.frombuffer(t.data, dtype=np.uint8) for t in tensors]
    addresses = [int(v.ctypes.data) for v in views]
    back_to_back = all(
        len(v) > 0 and addresses[i] + len(v) == addresses[i + 1] for i, v in enumerate(views[:-1])
    )
    if not views or not back_to_back or len(views[-1]) == 0:
        return pa.array([t.data for t in tensors], type=pa.large_binary())
    sizes = [len(v) for v in views]
    offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    data = pa.foreign_buffer(addresses[0], int(offsets[-1]), base=views)
    return pa.LargeBinaryArray.from_buffers(
        pa.large_binary(), len(views), [None, pa.py_buffer(offsets), data]
    )


def renumber(metadata: str, fragment_id: int) -> str:
    """Fragment metadata JSON with its id set to ``fragment_id``."""
    document = json.loads(metadata)
    document["id"] = fragment_id
    return json.dumps(document, sort_keys=True)


def schema_json() -> str:
    import lance

    return json.dumps(lance.schema_to_json(schema()), sort_keys=True)
