"""Any file no other format reads (``.npy``, ``.pkl``, ``.gguf``, a video, a tarball): its bytes,
never parsed, cut into content-defined chunks and given back byte for byte.

Chunk boundaries come from a rolling hash of the content (FastCDC, through ``pyfastcdc``), so
a change in the middle of a large file changes the chunks around it and no others: the rows
of the unchanged chunks keep their Lance fragments (see ``tensor_table.plan_groups``), and a
re-add writes and pushes about the changed bytes. A chunk travels as a row of dtype
``CHUNK_DTYPE`` named by the file it belongs to (``""`` for a single file); the file's size
and sha256 are the manifest's ``[source]``.
"""

from __future__ import annotations

import mmap
from collections.abc import Iterable
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, cast

from mreg.converters.base import (
    CHUNK_DTYPE,
    FileFormat,
    ModelSource,
    ReadOptions,
    Target,
    TensorRecord,
    write_tensor,
)
from mreg.errors import IntegrityError, UsageError

# FastCDC's bounds: chunks of 1 MiB on average, never under 256 KiB (but a file's last) nor
# over 4 MiB. Changing them (or the pinned pyfastcdc's algorithm) moves every boundary: stored
# versions still restore, only the next re-add shares fewer chunks with them.
AVG_CHUNK = 1 << 20
MIN_CHUNK = 256 << 10
MAX_CHUNK = 4 << 20
# Files at least this large are memory-mapped; smaller ones are read (a mapping holds a file
# descriptor, and a folder may hold many thousands of small files).
MAP_MIN = 4 << 20


class BlobConverter(FileFormat):
    format: ClassVar[str] = "blob"
    # Stored as a model is: one row per chunk in the tensor table, with its fragment reuse.
    kind: ClassVar[str] = "model"
    # No suffix: ``converters.detect`` falls back to this format for a file no other claims.
    suffixes: ClassVar[tuple[str, ...]] = ()
    # Chunks are checked against their digests as they are written: the result is the file.
    assembled_exactly: ClassVar[bool] = True

    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        if path.is_dir():
            raise UsageError(
                f"{path.name}/ is a folder; the blob format tracks one file",
                hint=f"run `mreg add {path.name} --format blob_dir`",
            )
        data, keepalive = load(path)
        return ModelSource(chunks("", data), "exact", "", keepalive=keepalive)

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        out = cast(BinaryIO, target)
        for record in tensors:
            if not record.is_chunk or record.name:
                raise IntegrityError(f"row '{record.name}' is not a chunk of this file")
            write_tensor(out, record)


def load(path: Path) -> tuple[memoryview, list[Any]]:
    """The bytes of ``path`` (memory-mapped when large), and what must stay alive with them."""
    size = path.stat().st_size
    if size < MAP_MIN:
        return memoryview(path.read_bytes()), []
    with open(path, "rb") as handle:
        mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
    return memoryview(mapped), [mapped]


def chunks(name: str, data: memoryview) -> list[TensorRecord]:
    """``data`` cut at content-defined boundaries, as chunk rows named ``name`` (no copy)."""
    if not len(data):
        return []
    from pyfastcdc import FastCDC

    cutter = FastCDC(AVG_CHUNK, min_size=MIN_CHUNK, max_size=MAX_CHUNK)
    cuts = [(chunk.offset, chunk.length) for chunk in cutter.cut_buf(data)]
    return [TensorRecord(name, CHUNK_DTYPE, (size,), data[at : at + size]) for at, size in cuts]


CONVERTER = BlobConverter()
