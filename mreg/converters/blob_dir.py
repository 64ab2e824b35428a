"""Any folder no other format recognises (mixed files, nested folders): every file's bytes, cut
into content-defined chunks as ``blob`` does, given back byte for byte.

``restore_info`` lists every file (path, size, sha256, and ``executable`` when its owner may
run it), empty files included; the chunk rows follow the files in that order, each named by
its file.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, ClassVar, cast

from mreg.converters.base import (
    FolderFormat,
    ModelSource,
    ReadOptions,
    Target,
    TensorRecord,
    folder_files,
    inside,
    write_tensor,
)
from mreg.converters.blob import chunks, load
from mreg.errors import CorruptInput, IntegrityError


class BlobFolderConverter(FolderFormat):
    format: ClassVar[str] = "blob_dir"
    kind: ClassVar[str] = "model"
    # Consulted last: it takes any folder that holds something, when no format knows it.
    priority: ClassVar[int] = -100
    assembled_exactly: ClassVar[bool] = True

    def matches(self, path: Path) -> bool:
        """Any folder with at least one entry that is not a folder (links are refused by
        ``read``, by name)."""
        return path.is_dir() and any(names for _, _, names in os.walk(path))

    def read(self, path: Path, options: ReadOptions) -> ModelSource:
        records: list[TensorRecord] = []
        listed: list[dict[str, Any]] = []
        keepalive: list[Any] = []
        for relpath in _files(path):
            file = path / relpath
            data, alive = load(file)
            keepalive += alive
            entry: dict[str, Any] = {
                "path": relpath,
                "size": len(data),
                "sha256": hashlib.sha256(data).hexdigest(),
            }
            if file.stat().st_mode & stat.S_IXUSR:
                entry["executable"] = True
            listed.append(entry)
            records += chunks(relpath, data)
        if not listed:
            raise CorruptInput(f"{path.name}/ holds no files")
        return ModelSource(
            records, "exact", json.dumps({"files": listed}, sort_keys=True), keepalive=keepalive
        )

    def write(self, tensors: Iterable[TensorRecord], restore_info: str, target: Target) -> None:
        folder = cast(Path, target)
        stream = iter(tensors)
        for entry in listed_files(restore_info):
            destination = inside(folder, entry["path"])
            destination.parent.mkdir(parents=True, exist_ok=True)
            # Not truncated: the folder is new (see Restoration).
            fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            with open(fd, "wb") as out:
                _write_file(out, entry, stream)
            if entry.get("executable"):
                mode = destination.stat().st_mode
                destination.chmod(mode | (mode & 0o444) >> 2)  # execute wherever read is allowed
        extra = next(stream, None)
        if extra is not None:
            raise IntegrityError(f"chunk of '{extra.name}' belongs to no file of the folder")


def listed_files(restore_info: str) -> list[dict[str, Any]]:
    """The files a ``blob_dir`` manifest records: path, size, sha256 (and ``executable``)."""
    return list(json.loads(restore_info or "{}").get("files", []))


def _write_file(out: Any, entry: dict[str, Any], stream: Iterator[TensorRecord]) -> None:
    """Write the chunks of the file ``entry`` names from ``stream`` into ``out``."""
    size, written = int(entry["size"]), 0
    while written < size:
        record = next(stream, None)
        if record is None or not record.is_chunk or record.name != entry["path"]:
            raise IntegrityError(f"'{entry['path']}': its chunks are missing from the data")
        write_tensor(out, record)
        written += len(record.data)
    if written != size:
        raise IntegrityError(f"'{entry['path']}': chunks hold {written} bytes, not {size}")


def _files(path: Path) -> list[str]:
    """Every file under ``path`` by sorted relative path; a symbolic link or anything that is
    not a regular file is refused by name (mreg does not follow links out of a folder)."""
    found = folder_files(path, "mreg does not follow links out of a folder it reads")
    for relpath in found:
        _check_name(path, relpath)
    return found


def _check_name(path: Path, relpath: str) -> None:
    """A name the manifest (UTF-8 text) can hold; '\\' is refused by ``folder_files``."""
    try:
        relpath.encode("utf-8")
    except UnicodeEncodeError:
        raise CorruptInput(f"{path.name}/{relpath!r}: file name is not valid UTF-8") from None


CONVERTER = BlobFolderConverter()
