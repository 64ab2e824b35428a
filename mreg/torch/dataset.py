"""PyTorch datasets over one exact version of an mreg dataset (or any Lance dataset).

* ``LanceTorchDataset``: map-style, random access by index, for ``DataLoader(shuffle=True)``
  and samplers. ``__getitems__`` turns a whole DataLoader batch into one Lance ``take``.
* ``LanceIterableDataset``: reads chunks of consecutive rows (never across a fragment), in a
  shuffled chunk order and through a shuffle buffer when ``shuffle=True``; DataLoader workers
  (and distributed ranks) each read their own share of the chunks, no row twice.

Both work with ``num_workers > 0``: they hold ``Rows`` (a picklable recipe, never an open
Lance dataset), and each worker opens its own dataset on first use. Workers must not be forked
from a process that has read Lance data (Lance is not fork-safe; such a worker is refused):
``mreg.torch.loader`` starts them from a forkserver, as does a DataLoader given
``multiprocessing_context="forkserver"`` (see ``mreg.torch.workers``).

What a sample is (image tensor, label int, or a dict) is described in ``mreg.torch.decode``. A
dataset with no rows (or none matching ``filter``) is refused when the dataset is made
(``mreg.torch.rows``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

# mreg.torch is the torch integration: only a user who imports it loads torch, never `import mreg`.
import torch  # noqa: TID253
from torch.utils.data import Dataset, IterableDataset, get_worker_info  # noqa: TID253

from mreg.errors import UsageError
from mreg.repo import Repo
from mreg.torch.decode import image_array
from mreg.torch.rows import Row, Rows, sample

Transform = Callable[[Any], Any]


class _LanceRows:
    """What both datasets share: the rows, and a row turned into a torch sample."""

    def __init__(
        self,
        rows: Rows,
        transform: Transform | None,
        target_transform: Transform | None,
        image_mode: str | None,
    ) -> None:
        self._rows = rows
        self.what = rows.what
        self.layout = rows.layout
        self.transform = transform
        self.target_transform = target_transform
        self.image_mode = image_mode

    def __len__(self) -> int:
        return self._rows.length

    @property
    def classes(self) -> list[str]:
        """Class names by index: the sorted distinct text labels (or a ClassLabel's names)."""
        return list(self.layout.classes)

    @property
    def class_to_idx(self) -> dict[str, int]:
        return self.layout.class_to_idx

    def _sample(self, row: Row) -> Any:
        image = self._image(row) if self.layout.image else None
        label: Any = row.label
        if label is not None and self.target_transform is not None:
            label = self.target_transform(label)
        return sample(self.layout, row.values, image, label, self._value)

    def _value(self, column: str, value: Any) -> Any:
        if column in self.layout.tensor_columns and value is not None:
            return torch.as_tensor(value)
        return value

    def _image(self, row: Row) -> Any:
        """``transform(PIL image)`` when a transform is set, else a uint8 CHW tensor."""
        image = self._rows.image(row, self.image_mode)
        if self.transform is not None:
            return self.transform(image)
        pixels = np.ascontiguousarray(image_array(image).transpose(2, 0, 1))
        return torch.from_numpy(pixels)


class LanceTorchDataset(_LanceRows, Dataset[Any]):
    """Map-style dataset over one exact version of a dataset artifact (or Lance dataset).

    ``name`` is an artifact of ``repo`` (a path or Repo; default the current directory), at
    ``rev`` (``v1.0.0``, a tag or any git revision; default the work tree's manifest), or a
    path or URI of a Lance dataset (``rev`` then picks a Lance version). ``remote=None`` reads
    from the local cache, fetching what it lacks from the default remote first; ``remote="NAME"``
    reads straight from that remote (S3 or a directory) at the manifest's version, downloading
    only the byte ranges it reads (no sha256 check on those partial reads: see
    ``mreg.torch.source``).

    ``ds[i]`` is ``(image, label)``, ``image`` alone without a label column, or a dict of the
    columns read when there is no image column or ``columns`` names other columns. ``image`` is
    ``transform(PIL image)`` if ``transform`` is set, else a ``torch.uint8`` tensor of shape
    (channels, height, width) in ``image_mode`` ("RGB" by default, None keeps each file's mode);
    ``label`` is an int (``target_transform(int)`` if set). ``filter`` (Lance SQL, for example
    ``"split = 'train'"``) keeps the matching rows only.

    Labels are read once, whole; a batch reads the other columns with one Lance ``take``.
    ``in_memory=True`` reads them whole too, into each process's memory on first access (about
    the size of the data files): a shuffled read then costs what a sequential one does, where
    Lance's random access costs about 15 us of CPU a row more.

    Errors: UsageError for a missing or unsuitable column, an empty dataset or a model artifact;
    CorruptInput for a value that is no image (naming column and row); RemoteError when the
    remote fails mid-read.
    """

    def __init__(
        self,
        name: str,
        rev: str | None = None,
        *,
        repo: str | Path | Repo | None = None,
        remote: str | None = None,
        columns: Sequence[str] | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
        transform: Transform | None = None,
        target_transform: Transform | None = None,
        filter: str | None = None,
        image_mode: str | None = "RGB",
        storage_options: dict[str, str] | None = None,
        in_memory: bool = False,
    ) -> None:
        rows = Rows(
            name,
            rev,
            repo,
            remote,
            columns,
            image_column,
            label_column,
            filter,
            storage_options,
            in_memory,
        )
        super().__init__(rows, transform, target_transform, image_mode)

    def __getitem__(self, index: int) -> Any:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Sequence[int]) -> list[Any]:
        """The samples at ``indices`` from one Lance ``take`` (DataLoader calls this per batch)."""
        positions = np.asarray(indices, dtype=np.int64).reshape(-1)
        length = self._rows.length
        positions = np.where(positions < 0, positions + length, positions)
        if positions.size and (positions.min() < 0 or positions.max() >= length):
            bad = next(int(i) for i in indices if not -length <= int(i) < length)
            raise IndexError(f"index {bad} is out of range for {self.what} ({length} rows)")
        return [self._sample(row) for row in self._rows.read(positions)]


class LanceIterableDataset(_LanceRows, IterableDataset[Any]):
    """Iterable dataset over one exact version: the same arguments and samples as
    ``LanceTorchDataset``, read ``batch_size`` consecutive rows at a time.

    With ``shuffle=True`` the order of those chunks is shuffled and rows pass through a buffer of
    ``buffer_size`` rows that yields them in random order. The order depends on ``seed`` and the
    epoch: the epoch advances each time the dataset is iterated in the same process (no workers,
    or ``persistent_workers=True``); with fresh workers every epoch, call ``set_epoch(epoch)``
    before each epoch, as with ``DistributedSampler``. Every DataLoader worker, and every rank of
    an initialised ``torch.distributed`` group, reads a disjoint share of the chunks: each row
    once per epoch overall (shares can differ by a chunk).
    """

    def __init__(
        self,
        name: str,
        rev: str | None = None,
        *,
        repo: str | Path | Repo | None = None,
        remote: str | None = None,
        columns: Sequence[str] | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
        transform: Transform | None = None,
        target_transform: Transform | None = None,
        filter: str | None = None,
        image_mode: str | None = "RGB",
        storage_options: dict[str, str] | None = None,
        batch_size: int = 256,
        shuffle: bool = False,
        buffer_size: int = 1024,
        seed: int = 0,
    ) -> None:
        if batch_size < 1 or buffer_size < 1:
            raise UsageError("batch_size and buffer_size must be at least 1")
        rows = Rows(
            name, rev, repo, remote, columns, image_column, label_column, filter, storage_options
        )
        super().__init__(rows, transform, target_transform, image_mode)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.buffer_size = buffer_size
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch`` on the next iteration (needed with fresh workers)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        epoch = self.epoch
        self.epoch += 1
        chunks = self._rows.chunks(self.batch_size)
        order = np.arange(len(chunks))
        if self.shuffle:
            np.random.default_rng([self.seed, epoch]).shuffle(order)
        share, shares = _share()
        mine = order[share::shares]
        rows: Iterator[Row] = (row for c in mine for row in self._rows.read(chunks[c]))
        if self.shuffle:
            rng = np.random.default_rng([self.seed, epoch, share])
            rows = _shuffled(rows, self.buffer_size, rng)
        for row in rows:
            yield self._sample(row)


def _share() -> tuple[int, int]:
    """This process's share of the work and the number of shares: DataLoader workers times
    distributed ranks."""
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    rank, world = 0, 1
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
    return rank * workers + worker, world * workers


def _shuffled(rows: Iterator[Row], size: int, rng: np.random.Generator) -> Iterator[Row]:
    """``rows`` in random order through a buffer of ``size`` rows."""
    buffer: list[Row] = []
    for row in rows:
        if len(buffer) < size:
            buffer.append(row)
            continue
        pick = int(rng.integers(size))
        yield buffer[pick]
        buffer[pick] = row
    rng.shuffle(buffer)
    yield from buffer
