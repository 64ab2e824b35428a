"""TensorFlow: a ``tf.data.Dataset`` over one exact version of a dataset artifact.

TensorFlow is optional and no dependency of mreg: ``dataset`` raises ImportError with the pip
command when it is missing. Rows are read as ``mreg.torch.LanceTorchDataset`` reads them (the
same sources, layouts and errors; torch itself is not needed), in TensorFlow's conventions:
images are ``uint8`` tensors of shape (height, width, channels).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from mreg.repo import Repo
from mreg.torch.decode import image_array
from mreg.torch.rows import Row, Rows, sample

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

INSTALL = "pip install tensorflow"
CHANNELS = {"RGB": 3, "RGBA": 4, "L": 1, "CMYK": 4, "LA": 2}


def dataset(
    name: str,
    rev: str | None = None,
    *,
    repo: str | Path | Repo | None = None,
    remote: str | None = None,
    columns: Sequence[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
    filter: str | None = None,
    image_mode: str | None = "RGB",
    storage_options: dict[str, str] | None = None,
    batch_size: int = 256,
) -> Any:
    """A ``tf.data.Dataset`` of single samples (batch, shuffle and prefetch it with tf.data).

    Arguments and samples are those of ``mreg.torch.LanceTorchDataset``: ``(image, label)``,
    ``image``, or a dict of columns; ``image`` is a ``tf.uint8`` tensor (height, width,
    channels), ``label`` a ``tf.int64``. Rows are read in order, ``batch_size`` per Lance take.
    ImportError naming the pip command when TensorFlow is not installed.
    """
    tf = _tensorflow()
    rows = Rows(
        name, rev, repo, remote, columns, image_column, label_column, filter, storage_options
    )

    def generate() -> Iterator[Any]:
        for chunk in rows.chunks(batch_size):
            for row in rows.read(chunk):
                yield _sample(rows, row, image_mode)

    return tf.data.Dataset.from_generator(
        generate, output_signature=_signature(tf, rows, image_mode)
    )


def _tensorflow() -> Any:
    try:
        return importlib.import_module("tensorflow")
    except ImportError:
        raise ImportError(f"mreg.tf needs TensorFlow, which is not installed: {INSTALL}") from None


def _sample(rows: Rows, row: Row, mode: str | None) -> Any:
    image = image_array(rows.image(row, mode)) if rows.layout.image is not None else None
    return sample(rows.layout, row.values, image, row.label, _value)


def _value(column: str, value: Any) -> Any:
    # from_generator wants an array where the signature has dimensions, not a Python list.
    return np.asarray(value) if isinstance(value, list) else value


def _signature(tf: Any, rows: Rows, mode: str | None) -> Any:
    layout = rows.layout
    image = tf.TensorSpec(shape=(None, None, CHANNELS.get(mode or "")), dtype=tf.uint8)
    label = tf.TensorSpec(shape=(), dtype=tf.int64)
    schema = rows.reader.dataset.schema
    types = {}
    if layout.as_dict:
        plain = [c for c in layout.columns if c not in (layout.image, layout.label)]
        types = {column: schema.field(column).type for column in plain}
    return sample(layout, types, image, label, lambda _, dtype: _spec(tf, dtype))


def _spec(tf: Any, dtype: pa.DataType) -> Any:
    """The TensorSpec of one value of an Arrow type: numbers, text and bytes, lists of them."""
    shape: tuple[int | None, ...] = ()
    while (
        pa.types.is_list(dtype)
        or pa.types.is_large_list(dtype)
        or pa.types.is_fixed_size_list(dtype)
    ):
        shape += (dtype.list_size if pa.types.is_fixed_size_list(dtype) else None,)
        dtype = dtype.value_type
    if pa.types.is_integer(dtype):
        return tf.TensorSpec(shape=shape, dtype=tf.int64)
    if pa.types.is_floating(dtype):
        return tf.TensorSpec(shape=shape, dtype=tf.float64 if dtype.bit_width == 64 else tf.float32)
    if pa.types.is_boolean(dtype):
        return tf.TensorSpec(shape=shape, dtype=tf.bool)
    return tf.TensorSpec(shape=shape, dtype=tf.string)
