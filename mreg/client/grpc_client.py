"""``GrpcClient``: the registry of a remote ``mreg serve`` over gRPC (``grpc://HOST:PORT``), with
the local ``ModelRegistry``'s method names, arguments and return types.

Every file that comes over the wire is checked against the sha256 the server sends before it is
handed over; a broken download resumes from the bytes already received. Server errors come back
as mreg errors with the server's one-line message: ``ModelNotFound`` (NOT_FOUND),
``RegistryError`` (INVALID_ARGUMENT, a ValueError as locally), ``VersionConflict`` (ABORTED),
``IntegrityError`` (DATA_LOSS), ``RemoteError`` for the rest (refused tokens, size limits, an
unreachable server), each with the gRPC status as ``code``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar

from mreg.client.remote import RemoteRegistry
from mreg.errors import (
    IntegrityError,
    ModelNotFound,
    MregError,
    RegistryError,
    RemoteError,
    UsageError,
    VersionConflict,
)
from mreg.protocol import codec
from mreg.registry.entries import ModelEntry, ModelSummary, summaries_of
from mreg.registry.types import ModelFormat

if TYPE_CHECKING:
    import grpc
    import pyarrow as pa

    from mreg.protocol import mreg_pb2
    from mreg.registry.stats import RegistryStats
    from mreg.registry.validate import ValidationReport

SCHEME = "grpc://"
CHUNK = 1 << 20
RETRIES = 3
T = TypeVar("T")


class ServerError(RemoteError):
    """The server refused a call or could not be reached; ``code`` is the gRPC status name."""

    def __init__(self, message: str, code: str, hint: str | None = None) -> None:
        super().__init__(message, hint)
        self.code = code


class GrpcClient(RemoteRegistry):
    """A remote registry at ``url`` (``grpc://HOST:PORT``), calling with ``token``.

    ``load_model`` rebuilds module classes of ``torch.nn``, ``transformers``, and of the
    modules in ``trusted_modules`` or ``$MREG_TRUSTED_MODULES`` only, as the local registry does.
    """

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 300.0,
        trusted_modules: list[str] | None = None,
    ) -> None:
        import grpc

        from mreg.protocol import mreg_pb2_grpc

        if not url.startswith(SCHEME) or not url[len(SCHEME) :].strip("/"):
            raise UsageError(f"'{url}' is not a gRPC address", hint="write grpc://HOST:PORT")
        self.url = url
        self.address = url[len(SCHEME) :].strip("/")
        self.timeout = timeout
        self.trusted_modules = trusted_modules or []
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        limit = CHUNK * 4
        self._channel = grpc.insecure_channel(
            self.address,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.max_send_message_length", limit),
            ],
        )
        self._stub = mreg_pb2_grpc.RegistryStub(self._channel)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GrpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- metadata ---------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """The server's version, whether it accepts writes, and the caller's name."""
        reply = self._call(self._stub.Info, _pb().InfoRequest())
        return {
            "version": reply.version,
            "accepts_writes": reply.accepts_writes,
            "caller": reply.caller,
        }

    def entry(self, name: str, version: str = "latest") -> ModelEntry:
        """``get_model_info`` that raises ModelNotFound with the server's reason."""
        request = _pb().ModelRequest(name=name, version=version)
        return codec.entry_from_message(self._call(self._stub.GetModelInfo, request))

    def list_models(self, model_type: str | None = None, **filters: Any) -> list[ModelEntry]:
        """Every registered version not removed; ``filters`` as the local registry's."""
        wanted = {k: v if isinstance(v, str) else json.dumps(v) for k, v in filters.items()}
        request = _pb().ListModelsRequest(model_type=str(model_type or ""), filters=wanted)
        return _entries(self._call(self._stub.ListModels, request))

    def models(self) -> list[ModelSummary]:
        """One summary per model with a version not removed, as the local ``models()``."""
        return summaries_of(self.list_models())

    def versions(self, name: str) -> list[str]:
        reply = self._call(self._stub.ListVersions, _pb().ModelRequest(name=name))
        return list(reply.versions)

    def search(self, query: str, latest: bool = False) -> list[ModelEntry]:
        request = _pb().SearchRequest(query=query, latest=latest)
        return _entries(self._call(self._stub.Search, request))

    def stage(self, name: str, version: str, stage: str) -> str:
        request = _pb().StageRequest(name=name, version=version, stage=stage)
        return str(self._call(self._stub.Stage, request).tags[0])

    def unstage(self, name: str, stage: str) -> str:
        request = _pb().StageRequest(name=name, stage=stage)
        return str(self._call(self._stub.Unstage, request).tags[0])

    def deprecate(self, name: str) -> str:
        return str(self._call(self._stub.Deprecate, _pb().ModelRequest(name=name)).tags[0])

    def remove_versions(self, name: str, version: str | None = None) -> list[str]:
        request = _pb().ModelRequest(name=name, version=version or "")
        return list(self._call(self._stub.Remove, request).tags)

    def validate_registry(self, load: bool = True) -> ValidationReport:
        reply = self._call(self._stub.Validate, _pb().ValidateRequest(load=load))
        return codec.validation_from_json(reply.json)

    def stats(self) -> RegistryStats:
        return codec.stats_from_json(self._call(self._stub.Stats, _pb().StatsRequest()).json)

    # -- registering ------------------------------------------------------------------------

    def register_model(
        self,
        name: str,
        model: Any,
        model_format: ModelFormat | str | None = None,
        model_type: str | None = None,
        version: str | None = None,
        **metadata: Any,
    ) -> ModelEntry:
        """Upload ``model`` (a weights file, a model folder, or a state dict / ``nn.Module`` /
        ONNX ``ModelProto``, saved here first as the local registry saves it) and register it
        on the server; returns its entry. ``metadata`` as the local ``register_model``'s."""
        with tempfile.TemporaryDirectory(prefix="mreg-upload-") as scratch:
            if not isinstance(model, str | os.PathLike):
                model, metadata = _saved(model, model_format, Path(scratch), metadata)
            path = Path(model)
            if not path.exists():
                raise UsageError(f"{path}: no such file or folder")
            files = _files_of(path)
            header = _pb().UploadHeader(
                name=name,
                files=[_pb().UploadFile(path=rel, size=f.stat().st_size) for rel, f in files],
                folder=path.is_dir(),
                version=version or "",
                model_format=str(getattr(model_format, "value", model_format) or ""),
                model_type=str(getattr(model_type, "value", model_type) or ""),
                performance_metrics=metadata.pop("performance_metrics", None) or {},
                metadata_json=json.dumps(metadata),
            )
            messages = _upload_messages(header, [f for _, f in files])
            reply = self._call(self._stub.Register, messages)
        return codec.entry_from_message(reply)

    # -- bytes ------------------------------------------------------------------------------

    def download(
        self,
        target: str,
        path: str | Path,
        progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """The file of ``target`` (``NAME``, ``NAME@vX.Y.Z``, ``NAME#STAGE``, ``NAME@REV``) in
        its original format at ``path`` (a model folder: a tar of it); its sha256 is checked
        before it takes ``path``'s place. A stream that breaks is resumed from the bytes
        received (a few tries); when the server stays away, the bytes received are kept beside
        ``path`` and the next ``download`` to ``path`` resumes from them. ``progress(done,
        size)`` is called after each chunk."""
        return self._receive_file(
            lambda offset: self._stub.Download(
                _pb().DownloadRequest(target=target, offset=offset),
                metadata=self._metadata,
                timeout=self.timeout,
            ),
            Path(path),
            progress=progress,
        )

    def export_model(
        self,
        name: str,
        version: str = "latest",
        export_path: str | Path = ".",
        export_format: str = "safetensors",
    ) -> str:
        """Have the server write one version as ``safetensors``, ``pth`` or ``onnx``; it lands
        at ``export_path`` (a file, or a folder to put ``NAME.FORMAT`` in). Returns the path, as
        the local registry does."""
        path = Path(export_path)
        if path.is_dir():
            path = path / f"{name}.{export_format.lower().lstrip('.')}"
        request = _pb().ExportRequest(name=name, version=version, format=export_format)
        return str(
            self._receive_file(
                lambda offset: self._stub.Export(
                    request, metadata=self._metadata, timeout=self.timeout
                ),
                path,
                resumable=False,
            )
        )

    def open(
        self,
        name: str,
        rev: str | None = None,
        columns: list[str] | None = None,
        filter: str | None = None,
        offset: int = 0,
        limit: int | None = None,
        batch_size: int = 0,
    ) -> Iterator[pa.RecordBatch]:
        """The rows of a dataset version (``rev``: a tag, version or git revision) as Arrow
        record batches, read on the server: ``columns``, a SQL ``filter``, ``offset``,
        ``limit``. ``pa.Table.from_batches(client.open(...))`` gives a table."""
        import pyarrow as pa

        request = _pb().RowsRequest(
            name=name,
            rev=rev or "",
            columns=columns or [],
            filter=filter or "",
            offset=offset,
            limit=limit or 0,
            batch_size=batch_size,
        )
        stream = self._stub.ReadRows(request, metadata=self._metadata, timeout=self.timeout)
        with _errors():
            for message in stream:
                yield from pa.ipc.open_stream(message.arrow_ipc)

    # -- internals --------------------------------------------------------------------------

    def _call(self, method: Callable[..., T], request: Any) -> T:
        with _errors():
            return method(request, metadata=self._metadata, timeout=self.timeout)
        raise AssertionError("not reached")  # for mypy: _errors raises or the call returns

    def _receive_file(
        self,
        open_stream: Callable[[int], Iterator[mreg_pb2.FileChunk]],
        path: Path,
        resumable: bool = True,
        progress: Callable[[int, int], None] | None = None,
    ) -> Path:
        """Write a file stream into a partial file beside ``path`` (resumed from its bytes when
        one is there), then rename it into place once the whole file's sha256 matches."""
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.parent / f".{path.name}.mreg-partial"
        if not resumable:
            partial.unlink(missing_ok=True)
        digest = hashlib.sha256()
        try:
            with open(partial, "a+b") as out:
                out.seek(0)
                while data := out.read(CHUNK):  # what an earlier, broken download received
                    digest.update(data)
                expected = self._stream_into(open_stream, out, digest, resumable, progress)
        except MregError as error:
            # Kept only to resume: bytes that are wrong, or none at all, are not worth it.
            if isinstance(error, IntegrityError) or partial.stat().st_size == 0:
                partial.unlink(missing_ok=True)
            raise
        if digest.hexdigest() != expected[0] or partial.stat().st_size != expected[1]:
            partial.unlink(missing_ok=True)
            raise IntegrityError(
                f"{path.name}: the bytes received do not match the sha256 the server sent",
                hint="download it again",
            )
        os.replace(partial, path)
        return path

    def _stream_into(
        self,
        open_stream: Callable[[int], Iterator[mreg_pb2.FileChunk]],
        out: BinaryIO,
        digest: Any,
        resumable: bool,
        progress: Callable[[int, int], None] | None,
    ) -> tuple[str, int]:
        """Append the stream to ``out`` from its end, retrying a broken stream from there;
        returns the (sha256, size) the server announced."""
        import grpc

        expected: tuple[str, int] | None = None
        for attempt in range(RETRIES + 1):
            try:
                with _errors():
                    for chunk in open_stream(out.tell()):
                        if chunk.sha256:
                            announced = (chunk.sha256, chunk.size)
                            if expected not in (None, announced):
                                raise IntegrityError("the file changed on the server")
                            expected = announced
                        if chunk.offset != out.tell():
                            raise IntegrityError("the server sent bytes out of order")
                        out.write(chunk.data)
                        digest.update(chunk.data)
                        if progress is not None and expected is not None:
                            progress(out.tell(), expected[1])
                assert expected is not None, "a file stream starts with its size and sha256"
                return expected
            except ServerError as error:
                broken = error.code == grpc.StatusCode.UNAVAILABLE.name
                if not (resumable and broken):
                    out.truncate(0)
                    raise
                if attempt == RETRIES:
                    out.flush()
                    raise ServerError(
                        f"{error.message} ({out.tell():,} bytes received and kept)",
                        error.code,
                        hint="run the download again when the server is back: it resumes",
                    ) from None
                time.sleep(0.5 * (attempt + 1))
        raise AssertionError("not reached")


# -- helpers ----------------------------------------------------------------------------------


def _pb() -> Any:
    from mreg.protocol import mreg_pb2

    return mreg_pb2


def _entries(reply: mreg_pb2.EntryList) -> list[ModelEntry]:
    return [codec.entry_from_message(e) for e in reply.entries]


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """A gRPC error as the mreg error of its status, with the server's one-line message."""
    import grpc

    try:
        yield
    except grpc.RpcError as error:
        code = error.code() if hasattr(error, "code") else grpc.StatusCode.UNKNOWN
        details = (error.details() if hasattr(error, "details") else None) or str(code)
        raise _error(code, details) from None


def _error(code: grpc.StatusCode, details: str) -> MregError:
    import grpc

    message, _, rest = details.partition(" (hint: ")
    hint = rest.removesuffix(")") or None
    if code == grpc.StatusCode.NOT_FOUND:
        return ModelNotFound(message, hint=hint)
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return RegistryError(message, hint=hint)
    if code == grpc.StatusCode.ABORTED:
        return VersionConflict(message, hint=hint)
    if code == grpc.StatusCode.DATA_LOSS:
        return IntegrityError(message, hint=hint)
    if code == grpc.StatusCode.UNAVAILABLE:
        message = f"the mreg server is unreachable or went away: {message}"
    return ServerError(message, code.name, hint=hint)


def _files_of(path: Path) -> list[tuple[str, Path]]:
    """``(name on the server, local file)`` of a file, or of every file of a folder."""
    if not path.is_dir():
        return [(path.name, path)]
    found = sorted(p for p in path.rglob("*") if p.is_file() and not p.is_symlink())
    return [(p.relative_to(path).as_posix(), p) for p in found]


def _upload_messages(
    header: mreg_pb2.UploadHeader, files: list[Path]
) -> Iterator[mreg_pb2.UploadMessage]:
    pb = _pb()
    yield pb.UploadMessage(header=header)
    for file in files:
        with open(file, "rb") as source:
            while data := source.read(CHUNK):
                yield pb.UploadMessage(chunk=data)


def _saved(
    model: Any, model_format: ModelFormat | str | None, folder: Path, metadata: dict[str, Any]
) -> tuple[Path, dict[str, Any]]:
    """A model object saved into ``folder`` by the local registry's loader of its format, and
    the metadata the loader records of it (its class, for rebuilding a module)."""
    from mreg.registry import checked_load
    from mreg.registry.registration_request import infer_format

    fmt = ModelFormat.parse(model_format) if model_format else infer_format(model)
    loader = checked_load.default_loaders()[fmt]
    found = loader.get_metadata(model)
    path = Path(loader.save(model, str(folder / "model")))
    recorded = {k: found[k] for k in ("model_class",) if found.get(k)}
    return path, {**recorded, **metadata}
