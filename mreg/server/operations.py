"""What the server does, whatever the transport (REST here, gRPC beside it): resolve what a
request names, register an upload, pick the file a download sends, read rows as Arrow batches.

Handlers of both transports stay thin: they parse a request, call one function here, and turn
the result (or the ``MregError`` raised) into a response. Every write runs under one
in-process lock and the repository lock, with the caller as the commit author, exactly as the
CLI would do it; reads use a registry of their own per thread (git readers are not shared
between threads).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import threading
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg import converters
from mreg.atomic import atomic_output
from mreg.errors import RemoteError, RepositoryBusy, UsageError, one_line
from mreg.hashing import sha256_file
from mreg.registry import ModelRegistry
from mreg.server import download
from mreg.server.read_cache import ReadCache

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.registry.entries import ModelEntry
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest

MAX_NAME = 200
# What a name or revision in a request may hold: no "..", no leading "/", no control characters.
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_SPEC = re.compile(r"^[^\x00-\x1f\x7f\\]+$")
# One write at a time in this process, whichever transport it came by: a write sets the commit
# author in the environment, which all threads share.
WRITES = threading.Lock()
WRITE_WAIT_SECONDS = 120.0
Render = Callable[[Any], Any]


class BadName(UsageError):
    """A name or revision in a request that the server refuses to look up (HTTP 400)."""


def check_name(name: str) -> str:
    """``name`` when it is a plain artifact or model name: no ``..``, no absolute path."""
    parts = name.split("/")
    if len(name) > MAX_NAME or not _NAME.match(name) or ".." in parts or "." in parts:
        raise BadName(
            f"{name[:MAX_NAME]!r} is not a valid artifact name",
            hint="names are like 'net' or 'models/net'",
        )
    return name


def check_spec(spec: str) -> str:
    """``NAME``, ``NAME@vX.Y.Z``, ``NAME@REV`` or ``NAME#STAGE``, with a valid NAME."""
    if len(spec) > 2 * MAX_NAME or not _SPEC.match(spec):
        raise BadName(f"not a valid revision: {spec[:MAX_NAME]!r}")
    name, _ = split_spec(spec)
    check_name(name)
    return spec


def split_spec(spec: str) -> tuple[str, str]:
    """``(name, version)`` for the registry: ``NAME#STAGE`` -> ``#STAGE``, ``NAME@V`` -> ``V``,
    ``NAME`` -> ``latest``."""
    if "#" in spec:
        name, stage = spec.split("#", 1)
        return name, f"#{stage}"
    name, _, version = spec.partition("@")
    return name, version or "latest"


@dataclass(frozen=True)
class Download:
    """One file a download sends: where it lies, its size, sha256 and name for the client."""

    path: Path
    size: int
    sha256: str
    filename: str


class Served:
    """The repository a server serves: its registries, write lock and event sink."""

    def __init__(self, root: Path, publish: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.root = root
        self.publish = publish or (lambda event: None)
        self._local = threading.local()
        self.reads = ReadCache(root)

    @property
    def registry(self) -> ModelRegistry:
        """This thread's registry of the served repository."""
        found = getattr(self._local, "registry", None)
        if found is None:
            found = self._local.registry = ModelRegistry(self.root)
        return found

    @property
    def repo(self) -> Repo:
        return self.registry.repo

    @contextlib.contextmanager
    def writing(self, author: str) -> Iterator[ModelRegistry]:
        """The registry, for one write at a time, with ``author`` on the commits it makes;
        RepositoryBusy when other writes hold it for longer than ``WRITE_WAIT_SECONDS``."""
        if not WRITES.acquire(timeout=WRITE_WAIT_SECONDS):
            raise RepositoryBusy("other writes kept the server busy", hint="send it again later")
        try:
            with author_of_commits(author):
                yield self.registry
        finally:
            self.reads.clear()
            WRITES.release()

    # -- registry reads: answered from memory while the refs stay the same (``ReadCache``),
    # a model's info is asked by every client of an inference fleet. ``render`` turns an answer
    # into what a transport sends (JSON bytes, a protobuf message), kept beside it.

    def models(self, render: Render | None = None) -> Any:
        return self._read(("models",), lambda r: r.models(), render)

    def entry(self, name: str, version: str, render: Render | None = None) -> Any:
        check_name(name)
        return self._read(("entry", name, version), lambda r: r.entry(name, version), render)

    def list_models(
        self, model_type: str | None, filters: dict[str, str], render: Render | None = None
    ) -> Any:
        question = ("list", model_type, tuple(sorted(filters.items())))
        return self._read(question, lambda r: r.list_models(model_type, **filters), render)

    def search(self, query: str, latest: bool, render: Render | None = None) -> Any:
        return self._read(("search", query, latest), lambda r: r.search(query, latest), render)

    def _read(
        self,
        question: tuple[Hashable, ...],
        compute: Callable[[ModelRegistry], Any],
        render: Render | None,
    ) -> Any:
        if render is None:
            return self.reads.get(question, lambda: compute(self.registry))
        rendered = (render.__qualname__, *question)
        return self.reads.get(rendered, lambda: render(self._read(question, compute, None)))

    # -- artifacts -----------------------------------------------------------------------

    def resolved(self, spec: str) -> str:
        """``spec`` checked (a name, never a path), ``NAME#STAGE`` turned into ``NAME@TAG``."""
        check_spec(spec)
        name, version = split_spec(spec)
        if version.startswith("#"):
            label, _ = self.registry._resolve(name, version)
            spec = f"{name}@{label}"
        return spec

    def target(self, spec: str) -> tuple[str, Manifest, str | None]:
        """``(manifest path, manifest, rev)`` of an artifact spec, stages resolved."""
        found = self.repo.target(self.resolved(spec))
        return found.manifest_rel, found.manifest, found.rev

    def download(self, spec: str) -> Download:
        """The file of ``spec`` in its original format (a folder as a tar archive), restored
        once into the cache's ``served/`` folder, named by its content key."""
        spec = self.resolved(spec)
        manifest = self.repo.target(spec).manifest
        filename = Path(manifest.path).name
        if converters.get(manifest.source.format).directory:
            filename += ".tar"
        path, digest = self._served(
            manifest.content_key(), lambda built: download.build(self.repo, spec, manifest, built)
        )
        return Download(path, path.stat().st_size, digest, filename)

    def export(self, name: str, version: str, export_format: str) -> Download:
        """``name`` at ``version`` exported to ``export_format`` (safetensors, pth, onnx), kept
        in the cache's ``served/`` folder by commit and format."""
        from mreg.registry.export import export_format_of

        target = export_format_of(export_format)
        entry = self.registry.entry(check_name(name), version)
        suffix = {"safetensors": ".safetensors", "pth": ".pth", "onnx": ".onnx"}[target]

        def write(built: Path) -> str:
            wanted = built.with_name(f"export{suffix}")
            exported = self.registry.export_model(name, entry.version, wanted, target)
            os.replace(exported, built)
            return sha256_file(built)

        path, digest = self._served(f"export-{entry.commit}-{target}{suffix}", write)
        return Download(path, path.stat().st_size, digest, f"{name}-{entry.version}{suffix}")

    def _served(self, key: str, write: Callable[[Path], str]) -> tuple[Path, str]:
        """The file ``served/KEY`` under the cache, made by ``write(path)`` (which returns its
        sha256, kept beside it as ``KEY.sha256``) the first time it is asked for. Two threads
        asking at once both build; the last rename wins with the same bytes."""
        folder = self.repo.cache.served
        path, digest_file = folder / key, folder / f"{key}.sha256"
        if path.is_file() and digest_file.is_file():
            return path, digest_file.read_text().strip()
        folder.mkdir(parents=True, exist_ok=True)
        with self.repo.cache.staging() as scratch:
            built = scratch / "file"
            digest = write(built)
            os.replace(built, path)
        with atomic_output(digest_file, durable=False) as out:
            out.write(digest.encode())
        return path, digest

    def rows(
        self,
        spec: str,
        columns: list[str] | None = None,
        filter: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
        batch_size: int | None = None,
    ) -> pa.RecordBatchReader:
        """The rows of a dataset version as Arrow batches (a slice, some columns, filtered).
        The first batch is read here, so that a bad filter or column is a UsageError before a
        response starts, not a stream broken off."""
        import pyarrow as pa

        _, manifest, rev = self.target(spec)
        if manifest.kind != "dataset":
            raise UsageError(f"{manifest.name} is a {manifest.kind}, not a dataset")
        if (offset or 0) < 0 or (limit is not None and limit < 0):
            raise UsageError("offset and limit must not be negative")
        dataset = self.repo.open(manifest.name, rev)
        try:
            scanner = dataset.scanner(
                columns=columns or None,
                filter=filter or None,
                offset=offset,
                limit=limit,
                batch_size=batch_size,
            )
            batches = scanner.to_batches()
            first = next(batches, None)
        except (ValueError, OSError, TypeError) as error:
            raise UsageError(f"cannot read rows of '{manifest.name}': {one_line(error)}") from None
        head = [] if first is None else [first]
        return pa.RecordBatchReader.from_batches(
            scanner.projected_schema, itertools.chain(head, batches)
        )

    # -- registry writes -----------------------------------------------------------------

    def register(
        self,
        author: str,
        name: str,
        path: Path,
        fields: dict[str, Any],
    ) -> ModelEntry:
        """Register ``path`` (an uploaded file or folder in ``.mreg/tmp``) as a new version of
        ``name``, committed by ``author``, then push its data to the default remote. The
        converters check the upload (format, no pickle) before anything is committed."""
        check_name(name)
        with self.writing(author) as registry:
            entry = registry.register_model(name, path, **fields)
            self._push(registry, entry.tag)
        self.publish({"event": "version_registered", "name": name, "version": entry.version,
                      "tag": entry.tag, "author": author})  # fmt: skip
        return entry

    def stage(self, author: str, name: str, version: str, stage: str) -> str:
        """Move ``stage`` of ``name`` to ``version``; the stage tag made."""
        with self.writing(author) as registry:
            tag = registry.stage(check_name(name), version, stage)
        self.publish({"event": "stage_changed", "name": name, "stage": stage,
                      "version": version, "tag": tag})  # fmt: skip
        return tag

    def unstage(self, author: str, name: str, stage: str) -> str:
        """Take ``stage`` off ``name``; the tag that records it."""
        with self.writing(author) as registry:
            tag = registry.unstage(check_name(name), stage)
        self.publish({"event": "stage_changed", "name": name, "stage": stage, "tag": tag})
        return tag

    def _push(self, registry: ModelRegistry, spec: str) -> None:
        repo = registry.repo
        if not repo.config.default_remote_name():
            return
        try:
            result = repo.push([spec])
        except RemoteError as error:
            self.publish({"event": "push_failed", "target": spec, "error": error.message})
            return
        self.publish({"event": "artifact_pushed", "target": spec, "files": result.files})


@contextlib.contextmanager
def author_of_commits(name: str) -> Iterator[None]:
    """Commits made inside name ``name`` as their author (git reads the environment)."""
    wanted = {"GIT_AUTHOR_NAME": name, "GIT_AUTHOR_EMAIL": f"{name}@mreg-serve.invalid"}
    before = {key: os.environ.get(key) for key in wanted}
    os.environ.update(wanted)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
