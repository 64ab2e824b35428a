"""How a model's tensors are laid out in Lance, and read back.

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

import dataclasses
import functools
import hashlib
import json
import mmap
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.converters.base import TensorRecord
from mreg.errors import IntegrityError, short_write_fault
from mreg.hashing import HASH_THREADS, sha256_file
from mreg.repo.manifest import FileEntry, Fragment, Manifest, TensorInfo

if TYPE_CHECKING:
    # Imported where used: Lance costs about 0.35 s to import (it pulls in pandas), pyarrow
    # and numpy 0.1 s more, and a checkout or pull whose tensors all lie whole in data files
    # (read by memory map, or landed as they downloaded) needs none of them.
    import lance
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


def holding_files(manifest: Manifest) -> list[FileEntry | None]:
    """For each tensor, a data file whose bytes are exactly the tensor's, or None.

    Lance keeps large blobs in files of their own. A file whose recorded sha256 equals a
    tensor's digest holds exactly that tensor's bytes, whatever Lance's layout: such tensors
    are memory-mapped instead of copied out through Lance (most of a large model), and a pull
    lands them straight in the restored file.
    """
    by_digest = {f.sha256: f for f in manifest.files if f.size > 0}
    return [by_digest.get(t.digest) for t in manifest.tensors]


def _map(path: Path) -> memoryview:
    with open(path, "rb") as handle:
        return memoryview(mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ))


def _read_ahead(blobs: Sequence[lance.BlobFile | None]) -> Iterator[bytes]:
    """The bytes of every blob in order, the next one read on a second thread while the caller
    works on the current one (Lance releases the GIL while it reads)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="mreg-read") as pool:
        upcoming = pool.submit(_read_blob, blobs[0]) if blobs else None
        for index in range(len(blobs)):
            assert upcoming is not None
            data = upcoming.result()
            if index + 1 < len(blobs):
                upcoming = pool.submit(_read_blob, blobs[index + 1])
            yield data


def _read_blob(blob: lance.BlobFile | None) -> bytes:
    return blob.read() if blob is not None else b""


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


def read_tensors(
    dataset: lance.LanceDataset,
    manifest: Manifest,
    check_digests: bool = True,
    checked_files: Collection[str] = frozenset(),
) -> Iterator[TensorRecord]:
    """Every tensor of ``manifest`` (whose Lance data ``dataset`` holds) in order, each checked
    against its recorded digest.

    ``checked_files``: sha256 digests of data files already checked and unchanged since (see
    ``Cache.is_checked``); a tensor held whole by such a file is not hashed again.
    """
    root = Path(dataset.uri)
    return read_stored_tensors(manifest, root, lambda: dataset, check_digests, checked_files)


def read_stored_tensors(
    manifest: Manifest,
    root: Path,
    open_dataset: Callable[[], lance.LanceDataset],
    check_digests: bool = True,
    checked_files: Collection[str] = frozenset(),
    placed: Mapping[int, int] | None = None,
) -> Iterator[TensorRecord]:
    """``read_tensors`` for data files under ``root`` (the cache), opening the Lance dataset
    only if some tensor does not lie whole in a file of its own.

    ``placed``: by tensor index, the offset at which the output being written already holds
    the tensor (landed there by a pull), passed on as ``TensorRecord.placed_at``.
    """
    direct = [root / f.path if f else None for f in holding_files(manifest)]
    through_lance = [i for i, path in enumerate(direct) if path is None]
    blobs: list[lance.BlobFile | None] = []
    if through_lance:
        dataset = open_dataset()
        count = dataset.count_rows()
        if count != len(manifest.tensors):
            raise IntegrityError(
                f"'{manifest.name}': Lance data hold {count} tensors, "
                f"the manifest lists {len(manifest.tensors)}"
            )
        blobs = list(dataset.take_blobs("data", indices=through_lance))
    tensors = _checked_tensors(manifest, direct, _read_ahead(blobs), check_digests, checked_files)
    if not placed:
        return tensors
    return (
        dataclasses.replace(tensor, placed_at=placed[index]) if index in placed else tensor
        for index, tensor in enumerate(tensors)
    )


def _checked_tensors(
    manifest: Manifest,
    direct: list[Path | None],
    from_lance: Iterator[bytes],
    check_digests: bool,
    checked_files: Collection[str],
) -> Iterator[TensorRecord]:
    # Files holding whole tensors are hashed ahead, on several threads (hashlib and reads
    # release the GIL), while the caller writes the tensors before them.
    ahead = {
        index: path
        for index, (info, path) in enumerate(zip(manifest.tensors, direct, strict=True))
        if check_digests and path is not None and info.digest not in checked_files
    }
    with ThreadPoolExecutor(HASH_THREADS, thread_name_prefix="mreg-hash") as pool:
        hashes = {index: pool.submit(sha256_file, path) for index, path in ahead.items()}
        try:
            for index, (info, path) in enumerate(zip(manifest.tensors, direct, strict=True)):
                data = _map(path) if path is not None else next(from_lance)
                if index in hashes:
                    actual = hashes[index].result()
                elif check_digests and path is None:
                    actual = hashlib.sha256(data).hexdigest()
                else:
                    actual = info.digest
                if actual != info.digest:
                    raise IntegrityError(
                        f"'{manifest.name}': tensor '{info.name}' does not match its recorded "
                        "digest",
                        hint="run `mreg verify` to find the corrupt file",
                    )
                yield TensorRecord(info.name, info.dtype, info.shape, memoryview(data), path)
        finally:
            for future in hashes.values():
                future.cancel()
