"""``mreg.ray.dataset``: one exact version of a dataset artifact as a ``ray.data.Dataset``.

The version is opened as ``mreg.torch`` opens it (``mreg.torch.source.resolve``): a Lance view
holding exactly the fragments the manifest records, committed once in the cache, with its data
files in the cache (checked against their sha256) or, with ``remote=``, read in place on the
remote. Ray reads that view at its one committed version, never "latest". Rows decode as in
``mreg.torch.decode``: images to uint8 arrays (height, width, channels), text labels to their
index in the version's sorted classes.

A Ray Train job pins a version by tag: ``mreg.ray.dataset("flowers", rev="v1.2.0")`` (the tag
``flowers@v1.2.0``, or any git revision) in the driver, passed as ``datasets={"train": ...}``
to the trainer; the workers read what the manifest at that tag lists, whatever ``main`` says.
On a multi-node cluster the view (``.mreg/cache/views``) and, without ``remote=``, the cache
must be on a file system every node mounts.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mreg.ray.ingest import import_ray
from mreg.repo import Repo
from mreg.torch.decode import Layout, image_array, open_image, plan
from mreg.torch.source import Reader, resolve

if TYPE_CHECKING:
    from collections.abc import Sequence


def dataset(
    name: str,
    rev: str | None = None,
    remote: str | None = None,
    columns: Sequence[str] | None = None,
    *,
    repo: str | Path | Repo | None = None,
    image_mode: str | None = "RGB",
) -> Any:
    """A ``ray.data.Dataset`` of the rows of ``name`` at ``rev`` (default: the work tree's
    manifest), with ``columns`` (default: all), images decoded and labels as indices."""
    ray = import_ray()
    source = resolve(name, rev, repo, remote)
    reader = Reader(source)
    lance_dataset = reader.dataset
    with reader.errors():
        layout, _ = plan(lance_dataset, source.what, list(columns) if columns else None)
    read = ray.data.read_lance(
        source.uri,
        version=lance_dataset.version,
        columns=list(layout.columns),
        storage_options=source.storage_options,
    )
    return read.map_batches(
        Decoder,
        fn_constructor_args=(layout, image_mode, source.what),
        batch_format="pyarrow",
        concurrency=1,
    )


class Decoder:
    """A batch of rows (Arrow) to a batch of samples (numpy): images decoded, labels mapped."""

    def __init__(self, layout: Layout, image_mode: str | None, what: str) -> None:
        self.layout = layout
        self.image_mode = image_mode
        self.what = what

    def __call__(self, batch: Any) -> dict[str, np.ndarray]:
        layout = self.layout
        out: dict[str, np.ndarray] = {}
        for column in layout.columns:
            values = batch.column(column)
            if column == layout.image:
                out[column] = self._images(values.to_pylist(), column)
            elif column == layout.label:
                out[column] = self._labels(values.to_pylist())
            else:
                out[column] = values.to_numpy(zero_copy_only=False)
        return out

    def _images(self, data: list[bytes | None], column: str) -> np.ndarray:
        images = [
            image_array(open_image(d, self.image_mode, column, n, self.what))
            for n, d in enumerate(data)
        ]
        shaped = np.empty(len(images), dtype=object)
        shaped[:] = images
        same = len({i.shape for i in images}) == 1
        return np.stack(images) if same else shaped

    def _labels(self, values: list[Any]) -> np.ndarray:
        if not self.layout.string_labels:
            return np.asarray(values, dtype=np.int64)
        index = self.layout.class_to_idx
        return np.asarray([index[v] for v in values], dtype=np.int64)
