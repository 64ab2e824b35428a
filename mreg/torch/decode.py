"""What a row becomes: which column holds images, which holds labels, and how each decodes.

Framework-neutral (Arrow, numpy, Pillow): ``mreg.torch`` and ``mreg.tf`` build their samples
from a ``Layout``. The rules, decided once per dataset:

* image column: ``image_column``, else a binary column named ``image`` (what the ``images`` and
  ``hf_dataset`` converters write) among the columns read;
* label column: ``label_column``, else ``label`` if it is among the columns read. String labels
  map to the index of the label in the sorted set of distinct labels of this version (like
  torchvision's ImageFolder, so a version that adds a class can shift indices); integer labels
  pass through unchanged;
* samples: ``(image, label)`` or ``image`` when an image column is found and ``columns`` names
  no other column; otherwise a dict of the columns read, images decoded, labels mapped.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from mreg.converters.hf_dataset import META_KEY as HF_META_KEY
from mreg.converters.images import PILLOW_FORMATS
from mreg.errors import CorruptInput, UsageError, one_line

if TYPE_CHECKING:
    import lance
    from PIL import Image

IMAGE_COLUMN = "image"
LABEL_COLUMN = "label"


@dataclass(frozen=True)
class Layout:
    """The columns read (in order) and what each becomes in a sample."""

    columns: tuple[str, ...]
    image: str | None
    label: str | None
    classes: tuple[str, ...]
    # The label value of each class: its index, except for integer labels without class names.
    class_values: tuple[int, ...]
    string_labels: bool
    as_dict: bool
    tensor_columns: frozenset[str]

    @property
    def class_to_idx(self) -> dict[str, int]:
        return dict(zip(self.classes, self.class_values, strict=True))

    @property
    def read_columns(self) -> list[str]:
        """The columns read per batch: labels are read once, whole (see ``plan``)."""
        return [c for c in self.columns if c != self.label]


def plan(
    dataset: lance.LanceDataset,
    what: str,
    columns: list[str] | None = None,
    image_column: str | None = None,
    label_column: str | None = None,
) -> tuple[Layout, np.ndarray | None]:
    """The Layout of ``dataset``, and the label of every row as an int (None without a label
    column): labels are read once, whole (8 bytes a row), so that a batch reads images only.

    UsageError naming the column for a column that is absent, an image column that holds no
    bytes, a label column that is neither text nor integers, or a row without a label."""
    schema = dataset.schema
    requested = list(columns) if columns else list(schema.names)
    for name in [*requested, image_column, label_column]:
        if name is not None and name not in schema.names:
            raise UsageError(
                f"{what} has no column '{name}' (it has: {', '.join(schema.names)})",
                hint="pass one of its columns",
            )
    image = image_column or _auto(IMAGE_COLUMN, requested, schema)
    label = label_column or (LABEL_COLUMN if LABEL_COLUMN in requested else None)
    if image is not None:
        _check_image_type(schema.field(image), what)
    string_labels = label is not None and _check_label_type(schema.field(label), what)
    others = set(requested) - {image, label} if columns else set()
    as_dict = image is None or bool(others)
    read: list[str] = requested if as_dict else [image] if image else []
    read += [c for c in (image, label) if c is not None and c not in read]
    classes: tuple[str, ...] = ()
    values: tuple[int, ...] = ()
    labels = None
    if label is not None:
        column = dataset.to_table(columns=[label]).column(label)
        classes, values = _classes(column, dataset.schema, label, string_labels, what)
        labels = _label_array(column, classes, string_labels)
    tensors = frozenset(c for c in read if _is_numeric_list(schema.field(c).type))
    layout = Layout(tuple(read), image, label, classes, values, string_labels, as_dict, tensors)
    return layout, labels


def _auto(name: str, requested: list[str], schema: pa.Schema) -> str | None:
    if name in requested and _is_binary(schema.field(name).type):
        return name
    return None


def _is_binary(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_binary(dtype) or pa.types.is_large_binary(dtype))


def _is_numeric_list(dtype: pa.DataType) -> bool:
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        return _is_numeric_list(dtype.value_type) or _is_number(dtype.value_type)
    if pa.types.is_fixed_size_list(dtype):
        return _is_numeric_list(dtype.value_type) or _is_number(dtype.value_type)
    return False


def _is_number(dtype: pa.DataType) -> bool:
    return bool(pa.types.is_integer(dtype) or pa.types.is_floating(dtype))


def _check_image_type(field: pa.Field, what: str) -> None:
    if not _is_binary(field.type):
        raise UsageError(
            f"column '{field.name}' of {what} holds {field.type}, not encoded images",
            hint="pass image_column= a column of image bytes",
        )


def _check_label_type(field: pa.Field, what: str) -> bool:
    """True for text labels, False for integer labels."""
    if pa.types.is_string(field.type) or pa.types.is_large_string(field.type):
        return True
    if pa.types.is_integer(field.type):
        return False
    raise UsageError(
        f"label column '{field.name}' of {what} holds {field.type}; "
        "labels must be text or integers",
        hint="pass label_column= another column",
    )


def _classes(
    values: pa.ChunkedArray, schema: pa.Schema, label: str, string_labels: bool, what: str
) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The class names and the label value of each: the sorted distinct text labels (value: the
    index), the names a Hugging Face ClassLabel recorded (value: the index), or the distinct
    integers (value: the integer itself). UsageError when a row has no label."""
    if values.null_count:
        first = int(pc.index(pc.is_null(values), True).as_py())
        raise UsageError(
            f"{values.null_count} row(s) of {what} have no '{label}' (first: row {first})",
            hint="give every row a label (an image folder: put images in class folders), "
            "or pass columns=['image'] to read images alone",
        )
    names = () if string_labels else _class_label_names(schema, label)
    if names:
        return names, tuple(range(len(names)))
    distinct = sorted(pc.unique(values).to_pylist())
    if string_labels:
        return tuple(distinct), tuple(range(len(distinct)))
    return tuple(str(value) for value in distinct), tuple(distinct)


def _class_label_names(schema: pa.Schema, label: str) -> tuple[str, ...]:
    """The names of a ``datasets.ClassLabel`` the hf_dataset converter kept in the schema."""
    recipe = (schema.metadata or {}).get(HF_META_KEY)
    if not recipe:
        return ()
    feature = json.loads(recipe).get("features", {}).get(label, {})
    if feature.get("_type") != "ClassLabel":
        return ()
    return tuple(str(name) for name in feature.get("names", []))


def _label_array(
    values: pa.ChunkedArray, classes: tuple[str, ...], string_labels: bool
) -> np.ndarray:
    """Every row's label as an int: text through its class index, integers as they are."""
    if string_labels:
        values = pc.index_in(values, value_set=pa.array(classes, values.type))
    return np.asarray(values.to_numpy(), dtype=np.int64)


def open_image(
    data: bytes | None, mode: str | None, column: str, row: int, what: str
) -> Image.Image:
    """The decoded image in ``data`` (converted to ``mode`` unless None); CorruptInput naming
    the column and row when it is no image. Only the formats image folders hold are opened."""
    from PIL import Image

    if data is None:
        raise CorruptInput(f"row {row} of {what} has no image in column '{column}'")
    try:
        image: Image.Image = Image.open(io.BytesIO(data), formats=PILLOW_FORMATS)
        if mode is not None and image.mode != mode:
            image = image.convert(mode)
        image.load()
    except Exception as error:  # Pillow's plugins raise many types on malformed input.
        raise CorruptInput(
            f"row {row} of {what}: column '{column}' is not an image ({one_line(error)})",
            hint=f"pass image_column= a column of image bytes ({', '.join(PILLOW_FORMATS)})",
        ) from None
    return image


def image_array(image: Image.Image) -> np.ndarray:
    """The pixels as a uint8 array, height x width x channels (a grey image has 1 channel)."""
    pixels = np.asarray(image)
    return pixels[:, :, None] if pixels.ndim == 2 else pixels
