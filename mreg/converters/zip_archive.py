"""Zip archives holding one dataset: a CSV, JSON, JSON Lines, text or Parquet file, a folder of
Parquet files, or any other dataset folder the registry recognises (images, ...).

The archive is checked from its headers, then extracted into a temporary folder while counting
what is really written (headers can lie), and the content goes to the converter that
``mreg.converters.detect`` picks for it. The inner format and member name are kept in the schema
metadata; checkout writes a new archive holding the dataset in that format: "equivalent".

Refused, naming the member: paths that leave the archive (``..``, absolute, drive letters),
symbolic links and other special files, encrypted members, more than ``MREG_ZIP_MAX_BYTES``
(default 20 GiB) in all, and members or archives that expand more than ``MREG_ZIP_MAX_RATIO``
(default 200) times: zip bombs.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile
import weakref
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, ClassVar, TypeVar, cast

import pyarrow as pa

from mreg import converters
from mreg.converters.base import DatasetConverter, FileFormat, ReadOptions, Target
from mreg.errors import CorruptInput, MregError, UnsupportedFormat, UsageError, one_line
from mreg.hashing import tree_files

METADATA_KEY = b"mreg.zip"
MAX_BYTES_ENV = "MREG_ZIP_MAX_BYTES"
MAX_RATIO_ENV = "MREG_ZIP_MAX_RATIO"
DEFAULT_MAX_BYTES = 20 << 30
DEFAULT_MAX_RATIO = 200
# Below this size a member may expand past the ratio: a few KiB of repeated text legitimately
# compresses 1000 to 1, and cannot hurt.
RATIO_FLOOR = 1 << 20
CHUNK = 1 << 20
# macOS adds resource forks under this folder when it zips; they are not data.
MACOS_METADATA = "__MACOSX"
# Restored archives are reproducible: every member gets this date.
FIXED_DATE = (1980, 1, 1, 0, 0, 0)

T = TypeVar("T")


@dataclass(frozen=True)
class Limits:
    """How much an archive may expand, in bytes in all and as a ratio to its compressed size."""

    max_bytes: int
    max_ratio: int

    @classmethod
    def from_env(cls) -> Limits:
        return cls(
            _env_int(MAX_BYTES_ENV, DEFAULT_MAX_BYTES), _env_int(MAX_RATIO_ENV, DEFAULT_MAX_RATIO)
        )

    def member_allows(self, size: int, compressed: int) -> bool:
        return size <= RATIO_FLOOR or size <= self.max_ratio * compressed


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    if not text.isdigit() or int(text) == 0:
        raise UsageError(f"{name} must be a positive whole number, not '{text}'")
    return int(text)


class ZipConverter(FileFormat):
    format: ClassVar[str] = "zip"
    kind: ClassVar[str] = "dataset"
    suffixes: ClassVar[tuple[str, ...]] = (".zip",)

    def read(self, path: Path, options: ReadOptions) -> pa.RecordBatchReader:
        scratch = _Scratch(options.scratch)
        try:
            # Named after the archive: messages about its top level then read sensibly.
            content, member = _extract(path, scratch.path / path.stem, Limits.from_env())
            inner = _inner_converter(path.name, content, member)
            reader = _in_archive(path.name, lambda: inner.read(content, options))
        except BaseException:
            scratch.remove()
            raise
        metadata = {
            **(reader.schema.metadata or {}),
            METADATA_KEY: json.dumps({"format": inner.format, "member": member}, sort_keys=True),
        }
        return pa.RecordBatchReader.from_batches(
            reader.schema.with_metadata(metadata), _batches(path.name, reader, scratch)
        )

    def write(self, batches: pa.RecordBatchReader, target: Target) -> None:
        out = cast(BinaryIO, target)
        metadata = dict(batches.schema.metadata or {})
        layout = json.loads(metadata.pop(METADATA_KEY))
        inner = cast(DatasetConverter, converters.get(layout["format"]))
        member = layout["member"]
        # The inner converter sees its own restore info only.
        plain = pa.RecordBatchReader.from_batches(batches.schema.with_metadata(metadata), batches)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            if not inner.directory:
                with archive.open(_member_info(member), "w", force_zip64=True) as handle:
                    inner.write(plain, cast(BinaryIO, handle))
                return
            with tempfile.TemporaryDirectory(prefix="mreg-zip-") as tmp:
                folder = Path(tmp)
                inner.write(plain, folder)
                _add_folder(archive, folder, member)


class _Scratch:
    """A temporary folder, removed when asked, when nothing refers to it any more, or at exit:
    a reader that is dropped unread still cleans up after itself."""

    def __init__(self, parent: Path | None) -> None:
        self.path = Path(tempfile.mkdtemp(prefix="mreg-zip-", dir=parent))
        self._finalizer = weakref.finalize(self, shutil.rmtree, self.path, ignore_errors=True)

    def remove(self) -> None:
        self._finalizer()


def _extract(path: Path, root: Path, limits: Limits) -> tuple[Path, str]:
    """Extract the checked archive under ``root``; returns the dataset in it and its member name
    ("" when the archive's top level is the dataset folder)."""
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as error:
        raise CorruptInput(f"{path.name} is not a zip archive: {one_line(error)}") from None
    with archive:
        members = _checked_members(path.name, archive, limits)
        root.mkdir()
        budget = limits.max_bytes
        for info, parts in members:
            target = root.joinpath(*parts)
            budget -= _extract_member(path.name, archive, info, target, limits, budget)
    return _content(path.name, root)


def _checked_members(
    name: str, archive: zipfile.ZipFile, limits: Limits
) -> list[tuple[zipfile.ZipInfo, list[str]]]:
    """Every member to extract with its path parts, after the checks the headers allow."""
    members: list[tuple[zipfile.ZipInfo, list[str]]] = []
    seen: set[tuple[str, ...]] = set()
    total = compressed = 0
    for info in archive.infolist():
        parts = _safe_parts(name, info)
        if not parts or parts[0] == MACOS_METADATA:
            continue
        if tuple(parts) in seen:
            raise CorruptInput(f"{name}: member '{info.filename}' appears twice")
        seen.add(tuple(parts))
        if not limits.member_allows(info.file_size, info.compress_size):
            raise _bomb(name, info.filename, info.file_size, info.compress_size, limits)
        total += info.file_size
        compressed += info.compress_size
        if total > limits.max_bytes:
            raise _too_big(name, info.filename, limits)
        members.append((info, parts))
    if not limits.member_allows(total, compressed):
        raise _bomb(name, "(all members)", total, compressed, limits)
    return members


def _safe_parts(name: str, info: zipfile.ZipInfo) -> list[str]:
    """The member's path as folder names below the extraction folder; refuses any other."""

    def refuse(why: str) -> CorruptInput:
        return CorruptInput(f"{name}: member '{info.filename}' {why}")

    filename = info.filename.replace("\\", "/")
    if filename.startswith("/"):
        raise refuse("has an absolute path")
    if re.match(r"^[A-Za-z]:", filename):
        raise refuse("names a drive")
    parts = [p for p in filename.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise refuse("leaves the archive's folder ('..')")
    kind = stat.S_IFMT(info.external_attr >> 16)
    if kind == stat.S_IFLNK:
        raise refuse("is a symbolic link")
    if kind not in (0, stat.S_IFREG, stat.S_IFDIR):
        raise refuse("is not a regular file")
    if info.flag_bits & 0x1:
        raise refuse("is encrypted")
    return parts


def _extract_member(
    name: str,
    archive: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    target: Path,
    limits: Limits,
    budget: int,
) -> int:
    """Extract one member, counting bytes as they come (at most ``budget``); returns how many
    were written."""
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return 0
    written = 0
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as source, open(target, "xb") as out:
            while chunk := source.read(CHUNK):
                written += len(chunk)
                # The header sizes were checked already; these hold if they lied.
                if written > budget:
                    raise _too_big(name, info.filename, limits)
                if not limits.member_allows(written, info.compress_size):
                    raise _bomb(name, info.filename, written, info.compress_size, limits)
                out.write(chunk)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as error:
        raise CorruptInput(
            f"{name}: member '{info.filename}' cannot be extracted: {one_line(error)}"
        ) from None
    return written


def _bomb(name: str, member: str, size: int, compressed: int, limits: Limits) -> CorruptInput:
    return CorruptInput(
        f"{name}: member '{member}' expands from {compressed:,} to {size:,} bytes, more than "
        f"{limits.max_ratio} times: a zip bomb?",
        hint=f"if the archive is trusted, raise {MAX_RATIO_ENV}",
    )


def _too_big(name: str, member: str, limits: Limits) -> CorruptInput:
    return CorruptInput(
        f"{name}: member '{member}' takes the archive past {limits.max_bytes:,} bytes "
        "when extracted",
        hint=f"if the archive is trusted, raise {MAX_BYTES_ENV}",
    )


def _content(name: str, root: Path) -> tuple[Path, str]:
    """The dataset in the extracted archive and its member name: its one top-level file or
    folder (a file alone at the end of a chain of folders counts as that file), or the top level
    itself ("") when it holds several entries or ``key=value`` partition folders."""
    entries = sorted(root.iterdir())
    if not entries:
        raise CorruptInput(f"{name} holds no files")
    if len(entries) > 1 or (entries[0].is_dir() and "=" in entries[0].name):
        return root, ""
    entry = _lone_file(entries[0]) or entries[0]
    return entry, entry.relative_to(root).as_posix() + ("/" if entry.is_dir() else "")


def _lone_file(entry: Path) -> Path | None:
    """The file at the end of ``entry``'s chain of one-entry folders, if it ends in one."""
    while entry.is_dir():
        children = list(entry.iterdir())
        if len(children) != 1:
            return None
        entry = children[0]
    return entry


def _inner_converter(name: str, content: Path, member: str) -> DatasetConverter:
    try:
        converter = _in_archive(name, lambda: converters.detect(content, opaque=False))
    except UnsupportedFormat:
        if member:
            raise
        names = sorted(p.name for p in content.iterdir())
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        raise UnsupportedFormat(
            f"{name} holds {shown}, which together are in no dataset format mreg knows",
            hint="an archive holds one dataset: one file, or the files of one dataset folder",
        ) from None
    shown = member or "its top level"
    if converter.format == ZipConverter.format:
        raise UnsupportedFormat(
            f"{name}: {shown} is a zip archive; archives inside archives are not supported"
        )
    if converter.kind != "dataset":
        raise UnsupportedFormat(
            f"{name}: {shown} is a model ({converter.format}); an archive must hold a dataset",
            hint="add the model file itself",
        )
    return cast(DatasetConverter, converter)


def _in_archive(name: str, call: Callable[[], T]) -> T:
    """``call()``, its mreg errors said to come from inside the archive ``name``."""
    try:
        return call()
    except MregError as error:
        raise _from_archive(name, error) from None


def _from_archive(name: str, error: MregError) -> MregError:
    return type(error)(f"{name}: {error.message}", hint=error.hint)


def _batches(
    name: str, reader: pa.RecordBatchReader, scratch: _Scratch
) -> Iterator[pa.RecordBatch]:
    """The inner reader's batches; the extracted files go once they are read."""
    try:
        yield from reader
    except MregError as error:
        raise _from_archive(name, error) from None
    finally:
        scratch.remove()


def _member_info(member: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(member, date_time=FIXED_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = (stat.S_IFREG | 0o644) << 16
    return info


def _add_folder(archive: zipfile.ZipFile, folder: Path, prefix: str) -> None:
    for path in tree_files(folder):
        info = _member_info(prefix + path.relative_to(folder).as_posix())
        with open(path, "rb") as source, archive.open(info, "w", force_zip64=True) as out:
            shutil.copyfileobj(source, out, CHUNK)


CONVERTER = ZipConverter()
