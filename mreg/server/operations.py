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
import os
import re
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg import converters
from mreg.atomic import atomic_output
from mreg.errors import MregError, RemoteError, UsageError
from mreg.hashing import sha256_file
from mreg.registry import ModelRegistry
from mreg.repo.rebuild import write_copy
from mreg.server.read_cache import ReadCache
from mreg.server.upload import UploadTooLarge

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.registry.entries import ModelEntry
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest

MAX_NAME = 200
# What a name or revision in a request may hold: no "..", no leading "/", no control characters.
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")
_SPEC = re.compile(r"^[^\x00-\x1f\x7f\\]+$")
SERVED = "served"  # under the cache: files restored for downloads, by content key
# One write at a time in this process, whichever transport it came by: a write sets the commit
# author in the environment, which all threads share.
WRITES = threading.Lock()


class BadName(UsageError):
    """A name or revision in a request that the server refuses to look up (HTTP 400)."""


def check_name(name: str) -> str:
    """``name`` when it is a plain artifact or model name: no ``..``, no absolute path."""
    parts = name.split("/")
    if len(name) > MAX_NAME or not _NAME.match(name) or ".." in parts or "." in parts:
        raise BadName(
            f"not a valid name: {name[:MAX_NAME]!r}", hint="names are like 'net' or 'models/net'"
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
        """The registry, for one write at a time, with ``author`` on the commits it makes."""
        with WRITES, author_of_commits(author):
            try:
                yield self.registry
            finally:
                self.reads.clear()

    # -- artifacts -----------------------------------------------------------------------

    def target(self, spec: str) -> tuple[str, Manifest, str | None]:
        """``(manifest path, manifest, rev)`` of an artifact spec, stages resolved."""
        check_spec(spec)
        name, version = split_spec(spec)
        if version.startswith("#"):
            label, _ = self.registry._resolve(name, version)
            spec = f"{name}@{label}"
        found = self.repo.target(spec)
        return found.manifest_rel, found.manifest, found.rev

    def download(self, spec: str) -> Download:
        """The file of ``spec`` in its original format (a folder as a tar archive), restored
        once into the cache's ``served/`` folder, named by its content key."""
        _, manifest, _ = self.target(spec)
        folder = self.repo.cache.root / SERVED
        folder.mkdir(parents=True, exist_ok=True)
        filename = Path(manifest.path).name
        key = manifest.content_key()
        path = folder / key
        digest_file = folder / f"{key}.sha256"
        if not (path.is_file() and digest_file.is_file()):
            digest = self._restore(manifest, path)
            digest_file.write_text(digest)
        if converters.get(manifest.source.format).directory:
            filename += ".tar"
        digest = digest_file.read_text().strip()
        return Download(path, path.stat().st_size, digest, filename)

    def export(self, name: str, version: str, export_format: str) -> Download:
        """``name`` at ``version`` exported to ``export_format`` (safetensors, pth, onnx), kept
        in the cache's ``served/`` folder by commit and format."""
        from mreg.registry.export import export_format_of

        target = export_format_of(export_format)
        entry = self.registry.entry(check_name(name), version)
        suffix = {"safetensors": ".safetensors", "pth": ".pth", "onnx": ".onnx"}[target]
        folder = self.repo.cache.root / SERVED
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"export-{entry.commit}-{target}{suffix}"
        if not path.is_file():
            with self.repo.cache.staging() as scratch:
                written = self.registry.export_model(
                    name, entry.version, scratch / f"m{suffix}", target
                )
                os.replace(written, path)
        filename = f"{name}-{entry.version}{suffix}"
        return Download(path, path.stat().st_size, sha256_file(path), filename)

    def _restore(self, manifest: Manifest, path: Path) -> str:
        with self.repo.cache.staging() as scratch:
            built = scratch / "artifact"
            write_copy(self.repo, manifest, built)
            if built.is_dir():
                archive = scratch / "artifact.tar"
                with tarfile.open(archive, "w") as tar:
                    for child in sorted(built.rglob("*")):
                        tar.add(child, arcname=child.relative_to(built).as_posix(), recursive=False)
                built = archive
            with atomic_output(path, durable=False) as out, open(built, "rb") as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
        return sha256_file(path)

    def rows(
        self,
        spec: str,
        columns: list[str] | None = None,
        filter: str | None = None,
        offset: int | None = None,
        limit: int | None = None,
    ) -> pa.RecordBatchReader:
        """The rows of a dataset version as Arrow batches (a slice, some columns, filtered)."""
        import pyarrow as pa

        _, manifest, rev = self.target(spec)
        if manifest.kind != "dataset":
            raise UsageError(f"{manifest.name} is a {manifest.kind}, not a dataset")
        if (offset or 0) < 0 or (limit is not None and limit < 0):
            raise UsageError("offset and limit must not be negative")
        dataset = self.repo.open(manifest.name, rev)
        try:
            scanner = dataset.scanner(
                columns=columns or None, filter=filter or None, offset=offset, limit=limit
            )
        except (ValueError, OSError) as error:
            raise UsageError(
                f"cannot read these rows: {str(error).splitlines()[0][:200]}"
            ) from None
        return pa.RecordBatchReader.from_batches(scanner.projected_schema, scanner.to_batches())

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


def error_status(error: MregError) -> int:
    """The HTTP status of an error (gRPC maps the same classes to its codes)."""
    from mreg.errors import (
        ArtifactNotFound,
        CorruptInput,
        ModelNotFound,
        RepositoryBusy,
        UnsupportedFormat,
        VersionConflict,
    )
    from mreg.server.access import AccessDenied, WriteForbidden

    table: list[tuple[type[MregError], int]] = [
        (AccessDenied, 401),
        (WriteForbidden, 403),
        (ModelNotFound, 404),
        (ArtifactNotFound, 404),
        (VersionConflict, 409),
        (RepositoryBusy, 409),
        (UploadTooLarge, 413),
        (BadName, 400),
        (UsageError, 422),
        (CorruptInput, 422),
        (UnsupportedFormat, 422),
    ]
    for kind, status in table:
        if isinstance(error, kind):
            return status
    return 500
