"""``mreg add PATH --engine ray``: a dataset converted by Ray tasks, one shard of the input each.

Why plain Ray tasks over Lance's fragment-writing API, and not Ray Data's Lance datasink or
``lance-ray``: both of those write *and commit* a Lance dataset at a URI (a new version of
"latest"), and re-split the rows into Ray blocks of their own order. mreg commits nothing to a
dataset directory: a version is the manifest, which lists each fragment's metadata and each data
file with its sha256, and the cache and remotes are content stores of data files. What mreg
needs from a worker is exactly what ``lance.fragment.write_fragments`` gives (data files and
fragment metadata, uncommitted), plus the sha256 of each file hashed where it was written. So:

* the driver lists the input's units (image files, Parquet files; for an ``s3://`` source, its
  objects: see ``mreg.ray.s3_source``) in the order a local add reads them, and cuts them into
  contiguous shards of about ``SHARD_BYTES`` (at least two per worker). Formats that cannot be
  split (a single CSV, JSONL or text file, a ``datasets`` folder) are one shard, converted by one
  task. The driver reads no source data (only Parquet footers, for the schema);
* each task (``mreg.ray.shard``) reads its shard with the format's own converter, writes Lance
  data files, hashes them where they were written, hashes the source files it read, and returns
  the fragments' metadata, the files' sizes and sha256 and the sources' digests. Where the files
  go: with an object-store or SSH default remote, the task uploads them straight to it under the
  keys ``mreg push`` uses (the driver passes the remote's configuration, credentials resolved on
  the driver, see ``storage.portable``); else into a staging folder beside the cache
  (``.mreg/tmp``; the cluster's nodes must share it), from which the driver moves them into the
  cache;
* the driver numbers the fragments in shard order (so rows come in the same order as a local
  add; only the fragment boundaries differ: at least one fragment per shard instead of one per
  ~1M rows), builds the ``[source]`` listing from the tasks' digests (``source_listing``), and
  the add writes one manifest, which is the one commit. A failed shard raises before the manifest
  is written: nothing is referenced. Files other shards uploaded are orphans that ``mreg gc
  --remote`` lists (and deletes once older than ``--older-than``); the staging folder is removed
  (or, if the driver dies, cleared by the next mreg run); a re-run converges on the same rows.
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.config import RemoteConfig
from mreg.converters.base import ReadOptions
from mreg.errors import MregError, RemoteError, UsageError, one_line
from mreg.hashing import sha256_file, sha256_files, tree_files
from mreg.ray.shard import Destination, Shard, ShardResult, convert_shard
from mreg.repo.add import numbered
from mreg.repo.manifest import FileEntry, Fragment
from mreg.storage import portable, probe

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.converters.base import DatasetConverter
    from mreg.repo.work_tree import WorkTree

INSTALL = 'pip install "mreg[ray]"'
# Enough rows per task that Ray's per-task cost (~ms) is small, few enough to spread the work.
SHARD_BYTES = 64 << 20


def import_ray() -> Any:
    """The ``ray`` module; UsageError naming the pip command when it is not installed."""
    try:
        import ray
    except ImportError:
        raise UsageError("--engine ray needs Ray, which is not installed", hint=INSTALL) from None
    return ray


class RayEngine:
    """Converts datasets on a Ray cluster (see the module docstring); ``address`` as
    ``ray.init`` takes it (None: the cluster this process is connected to, else a new local
    one), ``workers`` the most shards converted at once (None: one per CPU of the cluster)."""

    def __init__(self, address: str | None = None, workers: int | None = None) -> None:
        if workers is not None and workers < 1:
            raise UsageError(f"--workers must be at least 1, not {workers}")
        self.address = address
        self.workers = workers
        # (size, sha256) of each source file the last run's tasks read, by path in the input.
        self.sources: dict[str, tuple[int, str]] = {}

    def write_table(
        self,
        repo: WorkTree,
        converter: DatasetConverter,
        path: Path,
        schema: pa.Schema,
        first_id: int,
        options: ReadOptions,
    ) -> tuple[list[Fragment], list[FileEntry]]:
        """The rows of ``path`` as fragments numbered from ``first_id``; their files on the
        default remote (when it is one the nodes can reach) or in the cache."""
        shards = plan(path, converter, self.worker_count())
        job = Job(converter.format, str(path), path.name, schema, options.skip_bad)
        metadata, entries = self.convert(repo, job, shards, options)
        return numbered(metadata, first_id), entries

    def convert(
        self, repo: WorkTree, job: Job, shards: list[Shard], options: ReadOptions
    ) -> tuple[list[str], list[FileEntry]]:
        """Every shard of ``job`` converted by a task: the fragments' metadata in row order and
        the data files, placed where the version's data go; the sources' digests kept for
        ``source_listing``, what the tasks skipped added to ``options.skipped``."""
        ray = self.connect()
        remote = remote_destination(repo)
        with repo.cache.staging(".ray") as run:
            destinations = [Destination(str(run / f"shard-{s.index}"), remote) for s in shards]
            results = _run(ray, job, shards, destinations, self.worker_count())
            metadata: list[str] = []
            entries: list[FileEntry] = []
            for destination, result in zip(destinations, results, strict=True):
                written = [FileEntry(*f) for f in result.files]
                if remote is None:
                    repo.cache.place(Path(destination.stage), written)
                metadata += result.fragments
                entries += written
                options.skipped += result.skipped
                self.sources.update({rel: (size, sha) for rel, size, sha in result.sources})
        return metadata, entries

    def source_listing(self, path: Path) -> list[tuple[str, int, str]]:
        """(path, size, sha256) of every file of ``path`` as ``sha256_listing`` gives them, from
        the digests the tasks returned for what they read; only files no task read (not part of
        the rows: a README beside the images) are read here. For a file: its one entry."""
        known = self.sources
        if not path.is_dir():
            size, sha = known.get(path.name) or (path.stat().st_size, sha256_file(path))
            return [(path.name, size, sha)]
        files = [(p.relative_to(path).as_posix(), p) for p in tree_files(path)]
        unread = [p for rel, p in files if rel not in known]
        hashed = dict(zip(unread, sha256_files(unread), strict=True))
        return [
            (rel, *known[rel]) if rel in known else (rel, p.stat().st_size, hashed[p])
            for rel, p in files
        ]

    def worker_count(self) -> int:
        """``workers``, or one per CPU of the cluster."""
        return self.workers or max(1, int(self.connect().cluster_resources().get("CPU", 1)))

    def connect(self) -> Any:
        """The ``ray`` module, connected to the cluster (started, with no address)."""
        ray = import_ray()
        if not ray.is_initialized():
            local = self.address is None
            if self.address is not None:
                _check_reachable(self.address)
            try:
                ray.init(
                    address=self.address,
                    num_cpus=self.workers if local else None,
                    include_dashboard=False,
                    log_to_driver=False,
                )
            except Exception as error:  # Ray raises ConnectionError, RuntimeError, ValueError...
                where = f"the Ray cluster at {self.address}" if self.address else "a local Ray"
                raise RemoteError(
                    f"cannot start or reach {where}: {one_line(error)}",
                    hint="check --address (ray://HOST:10001 or HOST:6379) and that `ray status` "
                    "there answers; a cluster started with token auth needs its RAY_AUTH_* "
                    "environment here too",
                ) from None
        return ray


def _check_reachable(address: str, timeout: float = 5.0) -> None:
    """RemoteError at once when nothing listens at ``address`` (``HOST:PORT`` or
    ``ray://HOST:PORT``): Ray itself retries an unreachable cluster for minutes."""
    hostport = address.removeprefix("ray://")
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return  # "auto", "local" and the like: Ray finds the cluster
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as error:
        raise RemoteError(
            f"no Ray cluster answers at {address}: {one_line(error)}",
            hint="start one there (`ray start --head`) or pass the address `ray status` shows",
        ) from None


def plan(path: Path, converter: DatasetConverter, workers: int) -> list[Shard]:
    """The shards of a local input: one for a format that cannot be split, else ``split``."""
    lister = getattr(converter, "shard_units", None)
    if lister is None or not path.is_dir():
        return [Shard(0, 1, None)]
    units: list[str] = lister(path)
    return split(units, [(path / unit).stat().st_size for unit in units], workers)


def split(units: list[str], sizes: list[int], workers: int) -> list[Shard]:
    """Contiguous shards of ``units``, in row order, of about equal bytes: at least two per
    worker (so a slow shard does not leave the others idle), about SHARD_BYTES each."""
    total = sum(sizes)
    count = min(len(units), max(2 * workers, -(-total // SHARD_BYTES)))
    groups: list[list[str]] = [[] for _ in range(count)]
    done = 0
    for unit, size in zip(units, sizes, strict=True):
        groups[min(count - 1, done * count // max(total, 1))].append(unit)
        done += size
    kept = [g for g in groups if g]
    return [Shard(n, len(kept), tuple(g)) for n, g in enumerate(kept)]


@dataclass(frozen=True)
class Job:
    """What every task of one add is given: the input's format and location (``where`` names it
    in messages), the schema to write, and ``fetch_units`` for an input in object storage (a
    shard's units -> the callable that brings them to the node, see ``convert_shard``)."""

    format: str
    root: str
    where: str
    schema: pa.Schema
    skip_bad: bool
    fetch_units: Callable[[tuple[str, ...] | None], Any] | None = None


def _run(
    ray: Any, job: Job, shards: list[Shard], destinations: list[Destination], workers: int
) -> list[ShardResult]:
    """Every shard converted, at most ``workers`` at once; on the first failure the others are
    cancelled and MregError names the shard."""
    task = ray.remote(num_cpus=1)(convert_shard)
    results: dict[int, ShardResult] = {}
    waiting = list(shards)
    running: dict[Any, Shard] = {}
    while waiting or running:
        while waiting and len(running) < workers:
            shard = waiting.pop(0)
            fetch = job.fetch_units(shard.units) if job.fetch_units else None
            destination = destinations[shard.index]
            ref = task.remote(
                job.format, job.root, shard.units, job.schema, destination, job.skip_bad, fetch
            )
            running[ref] = shard
        ready, _ = ray.wait(list(running), num_returns=1)
        shard = running.pop(ready[0])
        try:
            results[shard.index] = ray.get(ready[0])
        except ray.exceptions.RayError as error:
            for ref in running:
                ray.cancel(ref, force=True)
            raise _shard_error(shard, job.where, error) from None
    return [results[shard.index] for shard in shards]


def _shard_error(shard: Shard, where: str, error: Exception) -> MregError:
    cause = getattr(error, "cause", None)
    what = shard.describe(where)
    hint = "nothing was recorded; fix the input, then run the same `mreg add` again"
    if isinstance(cause, MregError):
        return MregError(f"{what}: {cause.message}", hint=cause.hint or hint)
    return MregError(f"{what} failed on the Ray cluster: {one_line(cause or error)}", hint=hint)


def remote_destination(repo: WorkTree) -> RemoteConfig | None:
    """The default remote, with the credentials resolved here, when tasks write straight to it:
    an object store or SSH server the nodes reach themselves. None (the cache) when there is no
    default remote, or it is a local folder or read-only HTTP. Probed first, so that a remote
    that does not answer is one line here rather than an error in every task."""
    name = repo.config.default_remote_name()
    if name is None:
        return None
    remote = repo.remote(name)
    if remote.kind in ("local", "http"):
        return None
    probe(remote, repo.root)
    return portable(remote)
