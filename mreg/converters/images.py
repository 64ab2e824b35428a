"""Folders of images as datasets: one row per file, the encoded bytes kept exactly as on disk.

``root/cat/1.png`` becomes the row ``path="cat/1.png", label="cat"`` (the first-level folder;
images directly in the root have no label). Images are never re-encoded, so checkout writes every
file back byte for byte and the folder's tree digest comes back unchanged ("exact").
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, cast

import pyarrow as pa

from mreg.converters.base import FolderFormat, ReadOptions, Restore, Target
from mreg.errors import CorruptInput, IntegrityError, UnsupportedFormat, one_line
from mreg.progress import bar

SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif")
# Pillow opens only these, whatever a file's suffix claims: other plugins (EPS runs Ghostscript)
# have no place in an image dataset. Multi-picture camera JPEGs open through JPEG (format "MPO").
PILLOW_FORMATS = ("PNG", "JPEG", "WEBP", "BMP", "GIF")
BATCH_ROWS = 1024
# Images read ahead of the batch being built: enough to keep every thread busy, few enough that
# a folder of 20,000 photos never sits in memory at once.
READ_AHEAD = 2 * BATCH_ROWS

SCHEMA = pa.schema(
    [
        pa.field("path", pa.string(), nullable=False),
        pa.field("label", pa.string()),
        pa.field("image", pa.large_binary(), nullable=False),
        pa.field("width", pa.int32(), nullable=False),
        pa.field("height", pa.int32(), nullable=False),
        pa.field("format", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class _Image:
    path: str
    data: bytes
    width: int
    height: int
    format: str


@dataclass(frozen=True)
class _Unreadable:
    path: str
    reason: str


class ImageFolderConverter(FolderFormat):
    format: ClassVar[str] = "images"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = ()
    # Consulted after every other folder format: it claims only folders that hold nothing but
    # images, and a more specific format that wants such a folder should win.
    priority: ClassVar[int] = -10
    restore: ClassVar[Restore] = "exact"

    def matches(self, path: Path) -> bool:
        """True for a folder with at least one image and no other file.

        Symbolic links do not decide either way: ``read`` refuses them by name, which says more
        than "a folder in no format mreg knows".
        """
        if not path.is_dir():
            return False
        found = False
        for folder, _, names in os.walk(path):
            for name in names:
                if os.path.islink(os.path.join(folder, name)):
                    continue
                if not is_image_name(name):
                    return False
                found = True
        return found

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        """One row per image in sorted path order, streamed in batches of ``BATCH_ROWS``.

        The folder is listed (and links, other files or emptiness refused) before this returns;
        each image is read and decoded on a thread pool as the batches are consumed. A corrupt
        image raises CorruptInput naming it, or with ``options.skip_bad`` is left out and its
        relative path appended to ``options.skipped``.
        """
        return self.read_files(path, list_images(path), options)

    def shard_units(self, path: Path) -> list[str]:
        """The images of ``path`` in row order: what a distributed add splits into shards."""
        return list_images(path)

    def read_files(
        self, path: Path, files: list[str], options: ReadOptions
    ) -> pa.RecordBatchReader:
        """The rows of ``files`` (paths relative to ``path``, from ``list_images``), in order."""
        return pa.RecordBatchReader.from_batches(SCHEMA, _batches(path, files, options))

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        """Write each row's image bytes, unchanged, to ``target/path``; a later row with the same
        path (from an append) replaces the earlier one."""
        folder = cast(Path, target)
        for batch in batches:
            paths = batch.column("path").to_pylist()
            for relpath, image in zip(paths, batch.column("image"), strict=True):
                destination = _destination(folder, relpath)
                destination.parent.mkdir(parents=True, exist_ok=True)
                with open(destination, "wb") as out:
                    out.write(image.as_buffer())


def is_image_name(name: str) -> bool:
    """Whether a file name has one of the image suffixes, in any case."""
    return name.lower().endswith(SUFFIXES)


def list_images(root: Path) -> list[str]:
    """The relative posix paths of the images under ``root``, sorted as the tree digest sorts.

    Refuses, naming the entry: a symbolic link anywhere (never followed), a file that is not a
    regular image file, a name that is not UTF-8, and a folder with no image at all.
    """
    found = []
    for folder, dirs, names in os.walk(root, onerror=_unlistable):
        dirs.sort()  # the first refusal is then the same on every run
        for name in sorted(dirs + names):
            entry = Path(folder) / name
            relpath = entry.relative_to(root).as_posix()
            if entry.is_symlink():
                raise CorruptInput(
                    f"{root.name}/{relpath} is a symbolic link; mreg does not follow links "
                    "inside an image folder",
                    hint="replace the link with the file it points to, or remove it",
                )
            if name not in dirs:
                _check_image_file(root, entry, relpath)
                found.append(relpath)
    if not found:
        raise CorruptInput(
            f"{root.name}/ holds no images", hint="add images, or track another path"
        )
    return sorted(found)


def _unlistable(error: OSError) -> None:
    # os.walk skips folders it cannot list unless told otherwise; their images would go missing.
    raise CorruptInput(f"cannot list {error.filename}: {one_line(error)}") from None


def _check_image_file(root: Path, entry: Path, relpath: str) -> None:
    shown = f"{root.name}/{relpath}"
    if not entry.is_file():
        raise UnsupportedFormat(f"{shown} is not a regular file")
    if not is_image_name(entry.name):
        raise UnsupportedFormat(
            f"{shown} is not an image ({' '.join(SUFFIXES)})",
            hint="an image folder holds images only; move other files out of it",
        )
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise UnsupportedFormat(f"{shown!r}: file name is not valid UTF-8") from None


def _batches(root: Path, files: list[str], options: ReadOptions) -> Iterator[pa.RecordBatch]:
    rows: list[_Image] = []
    kept = 0
    with bar(f"read {root.name}", total=len(files), unit="items") as advance:
        for item in _read_all(root, files):
            advance(1)
            if isinstance(item, _Unreadable):
                _refuse_or_skip(root, item, options)
                continue
            rows.append(item)
            if len(rows) == BATCH_ROWS:
                yield _to_batch(rows)
                kept += len(rows)
                rows = []
    if rows:
        yield _to_batch(rows)
        kept += len(rows)
    if kept == 0:
        # Everything was skipped: an empty dataset would only hide that nothing was readable.
        raise CorruptInput(f"{root.name}/: none of its {len(files)} image(s) could be read")


def _refuse_or_skip(root: Path, item: _Unreadable, options: ReadOptions) -> None:
    if not options.skip_bad:
        raise CorruptInput(
            f"{root.name}/{item.path} {item.reason}",
            hint="fix or remove it, or pass --skip-bad to leave unreadable images out",
        )
    options.skipped.append(item.path)


def _read_all(root: Path, files: list[str]) -> Iterator[_Image | _Unreadable]:
    """Each of ``files`` read and checked on a thread pool, in order, at most READ_AHEAD ahead."""
    with ThreadPoolExecutor(thread_name_prefix="mreg-images") as pool:
        pending: deque[Future[_Image | _Unreadable]] = deque()
        try:
            for relpath in files:
                pending.append(pool.submit(_read_one, root, relpath))
                if len(pending) >= READ_AHEAD:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            # A refused image ends the read: the images still queued need not be opened.
            for future in pending:
                future.cancel()


def _read_one(root: Path, relpath: str) -> _Image | _Unreadable:
    try:
        data = _read_no_follow(root / relpath)
    except OSError as error:
        return _Unreadable(relpath, f"cannot be read: {one_line(error)}")
    try:
        width, height, format_name = inspect_image(data)
    except Exception as error:  # Pillow's plugins raise many types on malformed input.
        return _Unreadable(relpath, f"is corrupt or truncated: {one_line(error)}")
    return _Image(relpath, data, width, height, format_name)


def _read_no_follow(path: Path) -> bytes:
    # The folder was listed without links; O_NOFOLLOW keeps a link swapped in since then out.
    descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    with open(descriptor, "rb") as handle:
        return handle.read()


def inspect_image(data: bytes) -> tuple[int, int, str]:
    """Width, height and Pillow's format name of an encoded image.

    Raises (Pillow's own exception) when any part of it is corrupt or truncated: ``verify()``
    checks what a format can check without decoding (PNG checksums), and every frame is then
    decoded, because truncated JPEG, GIF and BMP files pass ``verify()``.
    """
    from PIL import Image

    with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as image:
        width, height = image.size
        format_name = image.format or "unknown"
        image.verify()
    with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as image:
        # JPEG decodes at 1/8 scale: every scan is still read, at a fraction of the cost.
        image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
        for frame in range(getattr(image, "n_frames", 1)):
            image.seek(frame)
            image.load()
    return width, height, format_name


def _to_batch(rows: list[_Image]) -> pa.RecordBatch:
    return pa.RecordBatch.from_arrays(
        [
            pa.array([row.path for row in rows], pa.string()),
            pa.array([label_of(row.path) for row in rows], pa.string()),
            pa.array([row.data for row in rows], pa.large_binary()),
            pa.array([row.width for row in rows], pa.int32()),
            pa.array([row.height for row in rows], pa.int32()),
            pa.array([row.format for row in rows], pa.string()),
        ],
        schema=SCHEMA,
    )


def label_of(relpath: str) -> str | None:
    """The class of an image: its first-level folder, or None for an image in the root."""
    first, separator, _ = relpath.partition("/")
    return first if separator else None


def _destination(folder: Path, relpath: str) -> Path:
    parts = relpath.split("/")
    # Rows come from checked data files, but a path must still never leave the folder.
    if any(part in ("", ".", "..") for part in parts):
        raise IntegrityError(
            f"image row path '{relpath}' points outside its folder",
            hint="run `mreg verify` to find the corrupt data",
        )
    return folder.joinpath(*parts)


CONVERTER = ImageFolderConverter()
