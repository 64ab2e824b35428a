"""A model's tensors read back from its tensor table (see ``tensor_table``): in order, each
checked against its digest, memory-mapped where a data file holds one whole; and decoded as torch
tensors for ``Repo.load_state_dict``."""

from __future__ import annotations

import dataclasses
import hashlib
import mmap
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.converters.base import TensorRecord
from mreg.errors import IntegrityError
from mreg.hashing import HASH_THREADS, sha256_file
from mreg.repo.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    # Imported where used: Lance costs about 0.35 s to import (it pulls in pandas), and a
    # checkout or pull whose tensors all lie whole in data files (read by memory map, or landed
    # as they downloaded) needs none of it.
    import lance


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


def state_dict(
    dataset: lance.LanceDataset, manifest: Manifest, checked_files: Collection[str]
) -> dict[str, Any]:
    """The tensors of ``manifest`` (whose Lance data ``dataset`` holds) as a flat dict of torch
    tensors, each checked as ``read_tensors`` checks it; the files of opaque chunks are left out."""
    import torch

    result = {}
    for record in read_tensors(dataset, manifest, checked_files=checked_files):
        if record.is_file:
            continue
        dtype = getattr(torch, record.dtype)
        if len(record.data):
            tensor = torch.frombuffer(bytearray(record.data), dtype=dtype).reshape(record.shape)
        else:
            tensor = torch.empty(record.shape, dtype=dtype)
        result[record.name] = tensor
    return result
