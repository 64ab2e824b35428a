"""The small interface between mreg and one file format.

A converter reads a file into plain records (tensors for models, Arrow batches for datasets) and
writes such records back to a file of its format. The Lance layout lives in ``mreg.repo``; a new
format is one new module in this package that defines ``CONVERTER``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, ClassVar, Protocol

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.repo.manifest import Restore


@dataclass(frozen=True)
class TensorRecord:
    """One tensor as raw little-endian bytes in row-major order."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    data: memoryview


@dataclass
class ModelSource:
    """What a model converter read: tensors in file order, and how to restore the file."""

    tensors: list[TensorRecord]
    restore: Restore
    restore_info: str
    keepalive: list[Any] = field(default_factory=list)


class ModelConverter(Protocol):
    format: ClassVar[str]
    kind: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    def read(self, path: Path) -> ModelSource:
        """The tensors of ``path``; CorruptInput/UnsupportedFormat for files it refuses."""
        ...

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, out: BinaryIO) -> None:
        """Write ``tensors`` (in manifest order) to ``out`` in this format."""
        ...


class DatasetConverter(Protocol):
    format: ClassVar[str]
    kind: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]

    def read(self, path: Path) -> pa.RecordBatchReader:
        """The rows of ``path`` as a stream of Arrow batches."""
        ...

    def write(self, batches: pa.RecordBatchReader, out: BinaryIO) -> None:
        """Write ``batches`` to ``out`` in this format."""
        ...


Converter = ModelConverter | DatasetConverter
