"""The training and evaluation rows, as map-style datasets a ``DataLoader`` can batch.

Two readers of the same images, for comparison (``--dataset_mode``): ``repo`` reads the
artifact's Lance data through ``mreg.torch.LanceTorchDataset``; ``arrow`` reads a Hugging Face
``datasets`` folder (``save_to_disk``) from the work tree. Both give ``(uint8 CHW tensor,
label index)`` pairs of the same size, so the training loop does not know which it got.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.errors import UsageError

if TYPE_CHECKING:
    import torch
    from PIL.Image import Image

    from mreg.repo import Repo

IMAGE_COLUMNS = ("image", "img", "pixel_values")
LABEL_COLUMNS = ("label", "labels", "fine_label", "target")


@dataclass(frozen=True)
class Split:
    """One split, ready to batch: its rows (a map-style dataset) and its class names."""

    rows: Any
    classes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.rows)


class ToTensor:
    """A PIL image as a ``3 x size x size`` uint8 tensor: RGB, resized when it is not that size.

    A class, not a closure, so DataLoader workers can pickle it.
    """

    def __init__(self, size: int) -> None:
        self.size = size

    def __call__(self, picture: Image) -> torch.Tensor:
        import numpy as np
        import torch
        from PIL import Image as PILImage

        picture = picture.convert("RGB")
        if picture.size != (self.size, self.size):
            picture = picture.resize((self.size, self.size), PILImage.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(picture).copy()).permute(2, 0, 1).contiguous()


def lance_split(repo: Repo, name: str, rev: str | None, size: int) -> Split:
    """The artifact ``name`` (at ``rev``) read from its Lance data in the cache."""
    from mreg.torch import LanceTorchDataset

    columns = [field.name for field in repo.open(name, rev).schema]
    rows = LanceTorchDataset(
        name,
        rev,
        repo=repo,
        image_column=_pick(columns, IMAGE_COLUMNS, name, "image"),
        label_column=_pick(columns, LABEL_COLUMNS, name, "label"),
        transform=ToTensor(size),
    )
    return Split(rows, tuple(str(c) for c in rows.classes))


def arrow_split(folder: Path, size: int) -> Split:
    """The ``save_to_disk`` folder ``folder`` read with ``datasets.load_from_disk``."""
    rows = ArrowImages(folder, size)
    return Split(rows, rows.classes)


class ArrowImages:
    """A ``datasets`` image dataset as ``(uint8 CHW tensor, label index)`` pairs."""

    def __init__(self, folder: Path, size: int) -> None:
        import datasets

        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            raise UsageError(f"{folder.name} holds several splits; the demo reads one at a time")
        if len(loaded) == 0:
            raise UsageError(f"{folder.name} has no rows: there is nothing to load")
        features = loaded.features
        self.image_column = next(
            (k for k, v in features.items() if isinstance(v, datasets.Image)),
            _pick(list(features), IMAGE_COLUMNS, folder.name, "image"),
        )
        self.label_column = _pick(list(features), LABEL_COLUMNS, folder.name, "label")
        label = features[self.label_column]
        if isinstance(label, datasets.ClassLabel):
            self.classes: tuple[str, ...] = tuple(label.names)
            self._index: dict[Any, int] | None = None
        else:
            names = sorted({str(v) for v in loaded[self.label_column]})
            self.classes = tuple(names)
            self._index = {name: i for i, name in enumerate(names)}
        self.rows = loaded.cast_column(self.image_column, datasets.Image(decode=True))
        self.transform = ToTensor(size)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        row = self.rows[index]
        label = row[self.label_column]
        target = self._index[str(label)] if self._index is not None else int(label)
        return self.transform(row[self.image_column]), target


def subset(split: Split, limit: int | None, seed: int) -> Split:
    """At most ``limit`` rows of ``split``, drawn at random with ``seed`` (files are often
    sorted by label, so the first rows alone could miss most classes)."""
    if limit is None or limit >= len(split):
        return split
    import torch
    from torch.utils.data import Subset

    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(split), generator=generator)[:limit].sort().values.tolist()
    return Split(Subset(split.rows, chosen), split.classes)


def check_same_classes(train: Split, held_out: Split, names: tuple[str, str]) -> None:
    """UsageError unless both splits number the same classes the same way."""
    if train.classes != held_out.classes:
        raise UsageError(
            f"{names[0]} and {names[1]} have different classes "
            f"({len(train.classes)} and {len(held_out.classes)})",
            hint="evaluate on a split of the same data set",
        )


def _pick(columns: Sequence[str], wanted: Sequence[str], where: str, what: str) -> str:
    for name in wanted:
        if name in columns:
            return name
    raise UsageError(
        f"{where} has no {what} column (looked for {', '.join(wanted)}; it has "
        f"{', '.join(columns)})"
    )
