"""scikit-learn's digits (1,797 real 8x8 scans of handwritten digits) as an image folder.

The offline demo needs a real data set and no network: scikit-learn ships this one inside the
package. Each image becomes an RGB PNG of ``size`` x ``size`` pixels at ``LABEL/INDEX.png`` in
one folder per split (the index is the row in ``load_digits``); the split is stratified with a
fixed seed. Rendering is deterministic: rendering again gives the same bytes, and ``mreg add``
finds no change.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from mreg.errors import UsageError
from mreg.progress import bar

SPLITS = ("train", "test")
TEST_FRACTION = 0.2
LABELS = [str(digit) for digit in range(10)]
SPLIT_SEED = 0


def require_sklearn() -> None:
    """UsageError with the install command when scikit-learn is missing."""
    import importlib.util

    if importlib.util.find_spec("sklearn") is None:
        raise UsageError(
            "the offline demo renders scikit-learn's digits, and scikit-learn is not installed",
            hint="pip install 'mreg[demo]'",
        )


def splits(labels: Sequence[int]) -> list[str]:
    """The split of each digit: stratified, so both splits hold every label."""
    from sklearn.model_selection import train_test_split

    indices = list(range(len(labels)))
    _, test = train_test_split(
        indices, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=labels
    )
    held_out = set(test)
    return ["test" if i in held_out else "train" for i in indices]


def render(folder: Path, split: str, size: int) -> int:
    """Write the ``split`` images into ``folder/LABEL/INDEX.png``; returns how many."""
    count = 0
    for index, label, png in _rendered(split, size):
        target = folder / str(label) / f"{index:04d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(png)
        count += 1
    return count


def render_arrow(folder: Path, split: str, size: int) -> int:
    """Write the same images as a Hugging Face ``datasets`` folder (``save_to_disk``: an
    ``image`` column and a ``label`` ClassLabel); returns how many."""
    import datasets

    rows = list(_rendered(split, size))
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=LABELS)}
    )
    table = {
        "image": [{"bytes": png, "path": f"{label}/{index:04d}.png"} for index, label, png in rows],
        "label": [label for _, label, _ in rows],
    }
    datasets.Dataset.from_dict(table, features=features).save_to_disk(str(folder))
    return len(rows)


def _rendered(split: str, size: int) -> Iterator[tuple[int, int, bytes]]:
    """``(index, label, PNG bytes)`` of every image of ``split``, in index order."""
    if split not in SPLITS:
        raise UsageError(f"the digits data set has no split '{split}'", hint="use train or test")
    require_sklearn()
    from sklearn.datasets import load_digits

    loaded = load_digits()  # 0..16 intensities, ink bright on a dark ground
    labels = [int(label) for label in loaded.target]
    chosen = [i for i, s in enumerate(splits(labels)) if s == split]
    with bar(f"render digits {split}", len(chosen), unit="items") as advance:
        for index in chosen:
            yield index, labels[index], _png(loaded.images[index], size)
            advance(1)


def _png(intensities: Any, size: int) -> bytes:
    import numpy as np
    from PIL import Image

    gray = (intensities * (255 / 16)).round().astype(np.uint8)
    picture = Image.fromarray(gray, mode="L").resize((size, size), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    picture.convert("RGB").save(buffer, format="PNG")
    return buffer.getvalue()
