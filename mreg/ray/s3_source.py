"""``mreg add s3://BUCKET/PREFIX [PATH] --engine ray``: a folder of images or of Parquet files in
object storage, converted by Ray tasks that each download their own shard, so that the data
never pass through the machine that runs mreg.

Like ``mreg import``, the manifest goes to ``PATH.mreg.toml`` (PATH defaults to the prefix's
last segment, in the current folder) and records the URL it came from; unlike it, nothing lands
at PATH: the version is on the default remote (or in the cache) and ``mreg checkout`` writes the
folder from it when one is wanted. The driver lists the objects (keys and sizes, no data) and
cuts them into shards; each task downloads its objects to its node, hashes them, converts them
with the format's own converter, and returns their digests, which the manifest records as the
source's files, exactly as a local add of the same folder records them.

Where the objects are read from: the endpoint, region and credentials of the default remote when
that is an S3 remote, else boto3's own settings on the driver (``AWS_ENDPOINT_URL``,
``AWS_ACCESS_KEY_ID`` / ``AWS_SECRET_ACCESS_KEY``, profiles); they are resolved on the driver and
given to the tasks.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mreg import converters
from mreg.config import RemoteConfig
from mreg.converters.base import ReadOptions
from mreg.converters.images import is_image_name
from mreg.converters.parquet import ParquetConverter
from mreg.errors import MregError, NameConflict, UsageError, one_line
from mreg.hashing import tree_digest
from mreg.ray.ingest import Job, RayEngine, split
from mreg.repo import manifest as manifests
from mreg.repo.add import AddResult, default_name, numbered
from mreg.repo.gitignore import ignore_in_git
from mreg.repo.manifest import ColumnInfo, FileEntry, Manifest, Source
from mreg.storage import portable
from mreg.storage.s3 import download_objects, list_objects, split_url

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.repo import Repo

FORMATS = ("images", "parquet_dir")
# Downloads of one task in flight at once: small images are one request each.
FETCH_JOBS = 16


@dataclass(frozen=True)
class Fetch:
    """What a task calls to bring its shard's objects to its node (see ``convert_shard``)."""

    source: RemoteConfig
    units: tuple[str, ...]

    def __call__(self, folder: Path) -> None:
        download_objects(self.source, list(self.units), folder, FETCH_JOBS)


def add_prefix(
    repo: Repo,
    engine: RayEngine,
    url: str,
    path: str | None = None,
    name: str | None = None,
    format: str | None = None,
    meta: dict[str, str] | None = None,
    skip_bad: bool = False,
) -> AddResult:
    """Convert the objects under ``url`` on the Ray cluster of ``engine`` and write the manifest
    at ``path`` (see the module docstring); nothing is written on failure."""
    with repo.lock.held():
        return _add(repo, engine, url, path, name, format, meta or {}, skip_bad)


def _add(
    repo: Repo,
    engine: RayEngine,
    url: str,
    path: str | None,
    name: str | None,
    format: str | None,
    meta: dict[str, str],
    skip_bad: bool,
) -> AddResult:
    source = source_config(repo, url)
    objects = list_objects(source)
    format, units = _units(url, objects, format)
    target, previous, name = _place(repo, url, path, name)
    fetch = partial(Fetch, portable(source))
    schema = _schema(engine, format, fetch(tuple(units[:1])), url)
    shards = split(units, [objects[u] for u in units], engine.worker_count())
    options = ReadOptions(skip_bad=skip_bad)
    job = Job(format, url, url.rstrip("/"), schema, skip_bad, fetch)
    metadata, entries = engine.convert(repo, job, shards, options)
    skipped = set(options.skipped)
    listing = [(u, *engine.sources[u]) for u in units if u not in skipped]
    kept_meta = previous.meta if previous else {}
    manifest = _manifest(name, target.name, url, format, listing, schema, metadata, entries)
    manifest = replace(manifest, meta=dict(sorted({**kept_meta, **meta}.items())))
    manifest_rel = repo.relpath(target) + manifests.SUFFIX
    manifests.write(repo.root / manifest_rel, manifest)
    ignore_in_git(repo.root, repo.relpath(target))
    new_bytes = sum(f.size for f in entries)
    return AddResult(manifest, manifest_rel, True, new_bytes, skipped=tuple(options.skipped))


def _place(
    repo: Repo, url: str, path: str | None, name: str | None
) -> tuple[Path, Manifest | None, str]:
    """Where the manifest goes (a path where no file is), the version it replaces, the name."""
    target = repo.path_in_work_tree(path or _default_path(url))
    if target.exists():
        raise UsageError(
            f"{path or target.name} exists: the manifest of an s3:// source goes where no file is",
            hint=f"pass another PATH: mreg add {url} PATH --engine ray",
        )
    manifest_rel = repo.relpath(target) + manifests.SUFFIX
    tracked = repo.manifests()
    previous = tracked.get(manifest_rel)
    name = name or (previous.name if previous else default_name(target))
    manifests.check_name(name)
    for other_rel, other in tracked.items():
        if other.name == name and other_rel != manifest_rel:
            raise NameConflict(f"the name '{name}' is already used by {other_rel}")
    return target, previous, name


def _manifest(
    name: str,
    path: str,
    url: str,
    format: str,
    listing: list[tuple[str, int, str]],
    schema: pa.Schema,
    metadata: list[str],
    entries: list[FileEntry],
) -> Manifest:
    """The version's manifest: the rows the tasks wrote, the sources they hashed."""
    fragments = numbered(metadata, 0)
    return Manifest(
        name=name,
        kind="dataset",
        path=path,
        source=Source(
            format,
            sum(size for _, size, _ in listing),
            tree_digest(listing),
            converters.get(format).restore,
            url=url,
            files=tuple(FileEntry(*f) for f in listing),
        ),
        rows=sum(f.rows for f in fragments),
        schema=json.dumps(_lance_schema(schema), sort_keys=True),
        fragments=tuple(fragments),
        files=tuple(sorted(entries, key=lambda f: f.path)),
        columns=tuple(ColumnInfo(f.name, str(f.type)) for f in schema),
    )


def source_config(repo: Repo, url: str) -> RemoteConfig:
    """How to reach ``url`` (see the module docstring), as a remote's configuration."""
    name = repo.config.default_remote_name()
    default = repo.remote(name) if name else None
    if default is not None and default.is_s3:
        return replace(default, name="source", url=url)
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    return RemoteConfig("source", url, endpoint_url=endpoint)


def _units(url: str, objects: dict[str, int], format: str | None) -> tuple[str, list[str]]:
    """The format and the objects to read, in the order a local add reads the same folder."""
    units = sorted(objects)
    if not units:
        raise UsageError(f"{url} holds no objects", hint="check the bucket and the prefix")
    for unit in units:
        parts = PurePosixPath(unit).parts
        if unit.startswith("/") or any(p in ("", ".", "..") for p in parts) or "//" in unit:
            raise UsageError(f"{url}: the key '{unit}' is no path a folder can hold")
    if format is None:
        if all(PurePosixPath(u).suffix.lower() in ParquetConverter.suffixes for u in units):
            format = "parquet_dir"
        elif all(is_image_name(PurePosixPath(u).name) for u in units):
            format = "images"
    if format not in FORMATS:
        raise UsageError(
            f"{url} is not a folder of images or of Parquet files: an s3:// source is one of those",
            hint="copy other data here and `mreg add` it",
        )
    return format, units


def _default_path(url: str) -> str:
    bucket, prefix = split_url(url)
    return PurePosixPath(prefix).name or bucket


def _schema(engine: RayEngine, format: str, fetch: Fetch, url: str) -> pa.Schema:
    """The columns of the first object, read by a task (the driver reads no data)."""
    ray = engine.connect()
    ref = ray.remote(num_cpus=1)(schema_of).remote(format, fetch)
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as error:
        cause = getattr(error, "cause", None) or error
        if isinstance(cause, MregError):
            raise cause from None
        raise MregError(f"{url}/{fetch.units[0]}: {one_line(cause)}") from None


def schema_of(format: str, fetch: Fetch) -> pa.Schema:
    """The Ray task behind ``_schema``."""
    folder = Path(tempfile.mkdtemp(prefix="mreg-ray-"))
    try:
        fetch(folder)
        converter: Any = converters.get(format)
        return converter.read_files(folder, list(fetch.units), ReadOptions(scratch=folder)).schema
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _lance_schema(schema: pa.Schema) -> Any:
    import lance

    return lance.schema_to_json(schema)
