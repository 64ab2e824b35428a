"""The small interface between mreg and one format.

A converter reads a file or folder into plain records (tensors for models, Arrow batches for
datasets) and writes such records back in its format. The Lance layout lives in ``mreg.repo``; a
new format is one new module in this package that defines ``CONVERTER``.

File formats receive a binary file object to write into; folder formats (``directory = True``)
receive an empty folder.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Literal, Protocol

from mreg.errors import CorruptInput, ManifestError

if TYPE_CHECKING:
    import pyarrow as pa


# How faithfully checkout gives an artifact back: the same bytes, or equal content.
Restore = Literal["exact", "equivalent"]

# A model folder's small side files (config.json, tokenizer files) travel as rows of this dtype.
FILE_DTYPE = "file"
# Opaque content (see ``blob``) travels as rows of this dtype: one content-defined chunk each,
# named by the file it belongs to, its shape its length.
CHUNK_DTYPE = "chunk"

Target = BinaryIO | Path


@dataclass(frozen=True)
class TensorRecord:
    """One tensor as raw little-endian bytes in row-major order (or a side file's bytes)."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: memoryview
    # A file whose bytes are exactly ``data`` (a cached Lance blob), so writers can copy it in
    # the kernel instead of through this process.
    source_file: Path | None = None
    # Where the bytes already are in the output being written (a pull landed them there as
    # they downloaded, at the offset ``placements`` gave): writers skip over them.
    placed_at: int | None = None

    @property
    def is_file(self) -> bool:
        return self.dtype == FILE_DTYPE

    @property
    def is_chunk(self) -> bool:
        return self.dtype == CHUNK_DTYPE


@dataclass(frozen=True)
class Placement:
    """Where a tensor's bytes go in a restored artifact: ``offset`` in ``file`` (a path inside a
    folder artifact; "" for a single-file artifact itself)."""

    file: str
    offset: int


def write_tensor(out: BinaryIO, tensor: TensorRecord) -> None:
    """Append ``tensor``'s bytes to ``out``; from its source file by ``copy_file_range`` when
    both ends are plain files (no page faults on a memory map, no copy through user space)."""
    if tensor.placed_at is not None:
        if out.tell() != tensor.placed_at:  # placements() and write() disagree: a bug
            raise RuntimeError(
                f"tensor '{tensor.name}' was placed at byte {tensor.placed_at}, "
                f"but its writer is at byte {out.tell()}"
            )
        out.seek(len(tensor.data), os.SEEK_CUR)
        return
    fileno = _fileno(out)
    if tensor.source_file is None or fileno is None or not hasattr(os, "copy_file_range"):
        out.write(tensor.data)
        return
    out.flush()
    start = out.tell()
    size = len(tensor.data)
    copied = 0
    with open(tensor.source_file, "rb") as source:
        try:
            while copied < size:
                done = os.copy_file_range(source.fileno(), fileno, size - copied, copied)
                if done == 0:
                    break
                copied += done
        except OSError:
            pass  # another file system (EXDEV), or one that cannot: the rest goes by write()
    # The copy moved the descriptor's offset behind the buffered object's back. Not to the end
    # of the file: bytes a pull landed further on may already be there.
    out.seek(start + copied)
    if copied < size:
        out.write(tensor.data[copied:])


def _fileno(out: BinaryIO) -> int | None:
    """The descriptor of ``out`` when it is a regular file, else None."""
    try:
        fileno = out.fileno()
    except (AttributeError, OSError, ValueError):
        return None
    return fileno if stat.S_ISREG(os.fstat(fileno).st_mode) else None


def inside(folder: Path, relpath: str) -> Path:
    """``folder / relpath`` for a path a manifest names, refusing one that would leave it."""
    parts = PurePosixPath(relpath).parts
    if not parts or relpath.startswith("/") or ".." in parts or "\\" in relpath:
        raise ManifestError(f"the manifest names '{relpath}', outside the model folder")
    return folder.joinpath(*parts)


def folder_files(path: Path, links: str) -> list[str]:
    """Relative paths of every file under the folder ``path``, sorted. A symbolic link (to a
    file or a folder), anything that is not a regular file, and a name holding '\\' (another
    system's separator) are refused by name; ``links`` says why links are refused."""
    found = []
    for folder, dirnames, filenames in os.walk(path):
        for name in dirnames + filenames:
            entry = Path(folder) / name
            relpath = entry.relative_to(path).as_posix()
            if entry.is_symlink():
                raise CorruptInput(f"{path.name}/{relpath} is a symbolic link: refused ({links})")
            if "\\" in name:
                raise CorruptInput(f"{path.name}/{relpath}: a file name with '\\' is refused")
            if name in filenames and not entry.is_file():
                raise CorruptInput(f"{path.name}/{relpath} is not a regular file: refused")
        found += [(Path(folder) / n).relative_to(path).as_posix() for n in filenames]
    return sorted(found)


def contained(folder: Path, relpath: str, what: str) -> Path:
    """``folder / relpath`` for a path that a file in ``folder`` names (a shard list, a split,
    an image path): CorruptInput when it would leave the folder, by its name or through a
    symbolic link on the way. Open it with ``O_NOFOLLOW`` where a link could be swapped in."""
    try:
        path = inside(folder, relpath)
    except ManifestError:
        raise CorruptInput(
            f"{folder.name}/: {what} '{relpath}' lies outside the folder: refused"
        ) from None
    current = folder
    for part in PurePosixPath(relpath).parts:
        current = current / part
        if current.is_symlink():
            raise CorruptInput(
                f"{folder.name}/: {what} '{relpath}' is a symbolic link: refused "
                "(mreg does not follow links out of a folder it reads)"
            )
    return path


def file_record(relpath: str, data: bytes) -> TensorRecord:
    """A side file kept byte-for-byte beside a model's tensors."""
    return TensorRecord(relpath, FILE_DTYPE, (), memoryview(data))


@dataclass
class ReadOptions:
    """What the user asked of a conversion; converters report back in ``skipped``."""

    skip_bad: bool = False
    skipped: list[str] = field(default_factory=list)
    # Where a converter may unpack large temporary files (the repository's .mreg/tmp, on the
    # same disk as the cache, rather than a system temp folder that may live in memory).
    scratch: Path | None = None


@dataclass
class ModelSource:
    """What a model converter read: tensors in file order, side files last, and how to restore."""

    tensors: list[TensorRecord]
    restore: Restore
    restore_info: str
    keepalive: list[Any] = field(default_factory=list)


class _Format(Protocol):
    format: ClassVar[str]
    kind: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    directory: ClassVar[bool]
    priority: ClassVar[int]
    # For datasets: "exact" when write() gives back the same bytes (image files, for example).
    restore: ClassVar[Restore]
    # For models: an exact restore writes only recorded bytes (the header text in the manifest,
    # tensor and side-file bytes checked against their digests), so the file is the original by
    # construction and checkout need not hash it whole a second time.
    assembled_exactly: ClassVar[bool]

    def matches(self, path: Path) -> bool:
        """Whether this converter understands ``path`` (consulted for folders)."""
        ...

    def companions(self, path: Path) -> list[str]:
        """Files beside ``path`` that are part of the artifact (ONNX external data), by name
        relative to its folder; refuses any that would leave the folder."""
        ...


class ModelConverter(_Format, Protocol):
    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        """The tensors of ``path``; CorruptInput/UnsupportedFormat for input it refuses."""
        ...

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        """Write ``tensors`` (in manifest order) to ``target`` in this format."""
        ...

    def describe(self, source: ModelSource) -> dict[str, str]:
        """What a reviewer wants to read in the manifest's [info]: opset, architecture, ..."""
        ...

    def placements(self, names: Sequence[str], restore_info: str) -> list[Placement | None]:
        """Where ``write`` will put the bytes of each tensor (``names`` in manifest order), for
        those it can tell before writing: a pull lands their downloads right there."""
        ...


class DatasetConverter(_Format, Protocol):
    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        """The rows of ``path`` as a stream of Arrow batches."""
        ...

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        """Write ``batches`` to ``target`` in this format."""
        ...


Converter = ModelConverter | DatasetConverter


class FileFormat:
    """Defaults for a converter of single files, recognised by suffix."""

    suffixes: ClassVar[tuple[str, ...]] = ()
    directory: ClassVar[bool] = False
    priority: ClassVar[int] = 0
    restore: ClassVar[Restore] = "equivalent"
    assembled_exactly: ClassVar[bool] = False

    def matches(self, path: Path) -> bool:
        return path.is_file() and path.suffix.lower() in self.suffixes

    def companions(self, path: Path) -> list[str]:
        return []

    def describe(self, source: ModelSource) -> dict[str, str]:
        return {}

    def placements(self, names: Sequence[str], restore_info: str) -> list[Placement | None]:
        return [None] * len(names)


class FolderFormat:
    """Defaults for a converter of folders, recognised by what they hold."""

    suffixes: ClassVar[tuple[str, ...]] = ()
    directory: ClassVar[bool] = True
    priority: ClassVar[int] = 0
    restore: ClassVar[Restore] = "equivalent"
    assembled_exactly: ClassVar[bool] = False

    def companions(self, path: Path) -> list[str]:
        return []

    def describe(self, source: ModelSource) -> dict[str, str]:
        return {}

    def placements(self, names: Sequence[str], restore_info: str) -> list[Placement | None]:
        return [None] * len(names)
