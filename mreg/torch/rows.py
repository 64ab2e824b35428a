"""The rows of one exact dataset version, read by position in batches: what the PyTorch datasets
and ``mreg.tf`` share (no torch here).

``Rows`` is picklable and cheap to copy into DataLoader workers: it holds a ``Reader`` (which
opens Lance once per process), the ``Layout`` (mreg.torch.decode) and, with a ``filter``, the
offsets of the matching rows. A dataset with no rows (or none matching the filter) is refused
here: there is nothing to train on, and an empty DataLoader would fail later with a less
helpful message, or train on nothing without a word.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mreg.errors import UsageError, one_line
from mreg.repo import Repo
from mreg.torch.decode import Layout, open_image, plan
from mreg.torch.source import Reader, resolve

if TYPE_CHECKING:
    from collections.abc import Sequence

    import lance
    from PIL import Image


@dataclass(frozen=True)
class Row:
    """One row as read, before its image is decoded (what a shuffle buffer holds).

    ``index`` is the row's position in the dataset (what error messages call "row N");
    ``values`` holds the columns other than the image and the label (dict samples only).
    """

    index: int
    image: bytes | None
    label: int | None
    values: dict[str, Any]


class Rows:
    """The rows of ``name`` at ``rev`` (see ``mreg.torch.source.resolve``), read by Layout."""

    def __init__(
        self,
        name: str,
        rev: str | None = None,
        repo: str | Path | Repo | None = None,
        remote: str | None = None,
        columns: Sequence[str] | None = None,
        image_column: str | None = None,
        label_column: str | None = None,
        filter: str | None = None,
        storage_options: dict[str, str] | None = None,
        in_memory: bool = False,
    ) -> None:
        source = resolve(name, rev, repo, remote, storage_options)
        self.reader = Reader(source, in_memory)
        self.what = self.reader.source.what
        dataset = self.reader.dataset
        with self.reader.errors():
            self.layout, self.labels = plan(
                dataset, self.what, list(columns) if columns else None, image_column, label_column
            )
            self.offsets = _matching(dataset, filter, self.what) if filter else None
            self.fragment_rows = [f.count_rows() for f in dataset.get_fragments()]
        self.length = len(self.offsets) if self.offsets is not None else sum(self.fragment_rows)
        if self.length == 0:
            matching = f" matching {filter!r}" if filter else ""
            raise UsageError(
                f"{self.what} has no rows{matching}: there is nothing to load",
                hint="check the name, the revision and the filter",
            )

    def read(self, positions: np.ndarray) -> list[Row]:
        """The rows at ``positions`` (0 <= p < length), in that order, from one Lance ``take``."""
        offsets = positions if self.offsets is None else self.offsets[positions]
        layout = self.layout
        labels = self.labels[offsets].tolist() if self.labels is not None else None
        images = None
        values: dict[str, list[Any]] = {}
        # Without other columns than the label (read whole, once) Lance has nothing to read.
        if layout.read_columns:
            table = self.reader.take(offsets, layout.read_columns)
            images = table.column(layout.image).to_pylist() if layout.image else None
            if layout.as_dict:
                plain = [c for c in layout.read_columns if c != layout.image]
                values = {c: table.column(c).to_pylist() for c in plain}
        return [
            Row(
                int(position),
                images[k] if images is not None else None,
                labels[k] if labels is not None else None,
                {c: column[k] for c, column in values.items()},
            )
            for k, position in enumerate(positions)
        ]

    def image(self, row: Row, mode: str | None) -> Image.Image:
        """The row's image decoded (converted to ``mode`` unless None); CorruptInput naming the
        column and row when it is no image."""
        assert self.layout.image is not None
        return open_image(row.image, mode, self.layout.image, row.index, self.what)

    def chunks(self, size: int) -> list[np.ndarray]:
        """Positions of ``size`` consecutive rows each, never across a fragment (sequential
        reads of one data file)."""
        if self.offsets is not None:
            positions = np.arange(self.length)
            return [positions[i : i + size] for i in range(0, self.length, size)]
        chunks = []
        start = 0
        for rows in self.fragment_rows:
            for first in range(start, start + rows, size):
                chunks.append(np.arange(first, min(first + size, start + rows)))
            start += rows
        return chunks


def sample(
    layout: Layout,
    values: Mapping[str, Any],
    image: Any,
    label: Any,
    value: Callable[[str, Any], Any],
) -> Any:
    """A sample as ``layout`` shapes it, in any framework's types: ``image``, ``(image,
    label)``, or a dict of the columns read, where each column other than the image and the
    label is ``value(column, values[column])``. (Or a sample's type, from the columns' types.)"""
    if not layout.as_dict:
        return image if layout.label is None else (image, label)
    shaped: dict[str, Any] = {}
    for column in layout.columns:
        if column == layout.image:
            shaped[column] = image
        elif column == layout.label:
            shaped[column] = label
        else:
            shaped[column] = value(column, values[column])
    return shaped


def _matching(dataset: lance.LanceDataset, filter: str, what: str) -> np.ndarray:
    """The offsets (as ``take`` counts them) of the rows matching the Lance SQL ``filter``."""
    fragments = dataset.get_fragments()
    if not fragments:
        return np.zeros(0, dtype=np.int64)
    hiding = any(f.metadata.deletion_file is not None for f in fragments)
    starts = np.zeros(max(f.fragment_id for f in fragments) + 1, dtype=np.int64)
    total = 0
    for fragment in fragments:
        starts[fragment.fragment_id] = total
        total += fragment.count_rows()
    try:
        table = dataset.to_table(columns=[], filter=filter, with_row_address=True)
    except (ValueError, OSError) as error:
        raise UsageError(f"filter {filter!r} does not apply to {what}: {one_line(error)}") from None
    # A row address is the fragment id (high 32 bits) and the row's place in it (low 32 bits).
    addresses = table.column("_rowaddr").to_numpy()
    if hiding:
        # Places count hidden rows too (a re-added table reuses fragments with some rows
        # hidden): the offsets are where the matches fall among every row that shows.
        shown = dataset.to_table(columns=[], with_row_address=True).column("_rowaddr").to_numpy()
        order = np.argsort(shown, kind="stable")
        return order[np.searchsorted(shown[order], addresses)].astype(np.int64)
    within = (addresses & np.uint64(0xFFFFFFFF)).astype(np.int64)
    return starts[(addresses >> np.uint64(32)).astype(np.int64)] + within
