"""One Ray task of ``mreg add --engine ray``: a shard of the input read, hashed, converted to
Lance data files, and those written to where the version's data go (see ``mreg.ray.ingest``).

Everything here runs on a cluster node, which may share nothing with the driver but what the
task's arguments carry: the input's location, the shard's units, and the destination (a folder
the nodes share, or a remote's configuration with the credentials the driver resolved).
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg import converters
from mreg.config import RemoteConfig
from mreg.converters.base import ReadOptions
from mreg.hashing import sha256_files, tree_files
from mreg.repo.add import stage_fragments, staged_files
from mreg.storage import open_store
from mreg.storage.transfer import run_parallel

if TYPE_CHECKING:
    import pyarrow as pa

# Uploads of one task in flight at once (data files are ~100 MiB at most, multipart above 64).
UPLOAD_JOBS = 4


@dataclass(frozen=True)
class Shard:
    """Units (files relative to the input folder) converted by one task; None: the whole input."""

    index: int
    count: int
    units: tuple[str, ...] | None

    def describe(self, where: str) -> str:
        if self.units is None:
            return f"shard 1/1 (all of {where})"
        first, last = self.units[0], self.units[-1]
        return (
            f"shard {self.index + 1}/{self.count} ({where}/{first} .. {last}, "
            f"{len(self.units)} files)"
        )


@dataclass(frozen=True)
class Destination:
    """Where a task puts the data files it wrote: ``stage`` (a folder the driver moves into the
    cache; the nodes must share it) or, with ``remote``, straight onto that remote under the
    keys ``mreg push`` uses, from a scratch folder on the node."""

    stage: str = ""
    remote: RemoteConfig | None = None


@dataclass(frozen=True)
class ShardResult:
    """What a task wrote: fragment metadata JSON in row order, (path, size, sha256) per data
    file; (path relative to the input, size, sha256) of every source file it read."""

    fragments: list[str]
    files: list[tuple[str, int, str]]
    skipped: list[str]
    sources: list[tuple[str, int, str]]


def convert_shard(
    format: str,
    root: str,
    units: tuple[str, ...] | None,
    schema: pa.Schema,
    destination: Destination,
    skip_bad: bool,
    fetch: Any = None,
) -> ShardResult:
    """The Ray task: the rows of ``units`` of ``root`` (all of it with None) written as Lance
    data files to ``destination``, each hashed where it was written, and the sources it read
    hashed too. ``fetch(folder)``, when given, first brings the shard's units from object
    storage into ``folder`` (``root`` is then where they came from, for messages only)."""
    scratch = _scratch(destination)
    try:
        source = Path(root)
        if fetch is not None:
            source = scratch / "source"
            fetch(source)
        folder = Path(destination.stage) if destination.remote is None else scratch / "lance"
        folder.mkdir(parents=True)
        options = ReadOptions(skip_bad=skip_bad, scratch=scratch)
        metadata = _write(format, source, units, schema, folder, options)
        files = _hashed(folder, sorted(staged_files(folder)))
        if destination.remote is not None:
            _upload(destination.remote, folder, files)
        sources = _hashed(source, _read_units(source, units))
        return ShardResult(metadata, files, list(options.skipped), sources)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _scratch(destination: Destination) -> Path:
    """A fresh folder on this node: beside the stage (so files move, not copy, into it), else
    in the node's temporary folder."""
    if destination.remote is None:
        Path(destination.stage).parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(dir=Path(destination.stage).parent, prefix="scratch-"))
    return Path(tempfile.mkdtemp(prefix="mreg-ray-"))


def _write(
    format: str,
    source: Path,
    units: tuple[str, ...] | None,
    schema: pa.Schema,
    folder: Path,
    options: ReadOptions,
) -> list[str]:
    converter: Any = converters.get(format)
    if units is None:
        reader = converter.read(source, options)
    else:
        reader = converter.read_files(source, list(units), options)
    return stage_fragments(reader, folder, schema)


def _read_units(source: Path, units: tuple[str, ...] | None) -> list[str]:
    """The source files a task read, relative to ``source``: its units, or every file of the
    input when it read all of it (a file: its own name)."""
    if units is not None:
        return list(units)
    if source.is_dir():
        return [p.relative_to(source).as_posix() for p in tree_files(source)]
    return [source.name]


def _hashed(root: Path, relpaths: list[str]) -> list[tuple[str, int, str]]:
    """(relpath, size, sha256) of files under ``root``; ``root`` itself for a file's name."""
    paths = [root / rel if root.is_dir() else root for rel in relpaths]
    digests = sha256_files(paths)
    return [
        (rel, p.stat().st_size, digest)
        for rel, p, digest in zip(relpaths, paths, digests, strict=True)
    ]


def _upload(remote: RemoteConfig, folder: Path, files: list[tuple[str, int, str]]) -> None:
    """The data files onto ``remote`` under their cache paths, as ``mreg push`` would put them
    (each object visible only once complete)."""
    store = open_store(remote, Path.cwd(), jobs=UPLOAD_JOBS)

    def upload(file: tuple[str, int, str], advance: Any) -> None:
        store.upload(folder / file[0], file[0], advance)

    total = sum(size for _, size, _ in files)
    run_parallel(files, upload, f"upload to {remote.name}", total, UPLOAD_JOBS)
