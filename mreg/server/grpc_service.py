"""The gRPC half of ``mreg serve``: the ``mreg.v1.Registry`` service (``mreg/server/mreg.proto``)
as a thin layer over the library API (``mreg.registry``, ``mreg.repo``).

Reads run side by side on the server's threads. Writes are what the CLI does: a commit and a
tag in the served repository, under its lock, the commit's author the caller's name, then the
new version's data pushed to the default remote. They run one at a time in this process (the
repository lock, an flock, also keeps any CLI command out). An upload goes into ``.mreg/tmp``
and is checked by the registry (format from the suffix, PyTorch files read with
``weights_only``, ONNX through ``onnx.checker``) before anything is committed; one that breaks
off leaves nothing committed and its temporary folder removed.

Run alone: ``python -m mreg.server.grpc_service ROOT --port P [--token-file F] [--read-only]``.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import mreg
from mreg.errors import (
    MregError,
    UsageError,
)
from mreg.protocol import codec
from mreg.repo import manifest as manifests
from mreg.server import grpc_messages, grpc_status, operations, upload
from mreg.server.access import Access, Identity, load_access

if TYPE_CHECKING:
    import grpc

    from mreg.protocol import mreg_pb2
    from mreg.registry import ModelRegistry
    from mreg.repo import Repo


DEFAULT_MAX_UPLOAD = 4 << 30
WRITE_WAIT_SECONDS = 120.0
T = TypeVar("T")


def start(
    root: Path,
    host: str,
    port: int,
    access: Access,
    *,
    max_upload: int = DEFAULT_MAX_UPLOAD,
    served: operations.Served | None = None,
) -> grpc.Server:
    """A started gRPC server for the repository at ``root`` on ``host:port``; the caller stops
    it (``server.stop(grace)``). ``served``: the REST half's, so that both share one read cache
    and one event bus. UsageError when the port cannot be bound."""
    import grpc

    from mreg.protocol import mreg_pb2_grpc

    served = served or operations.Served(mreg.Repo(root).root)
    servicer = RegistryService(served, access, max_upload)
    limit = grpc_messages.CHUNK * 4
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="mreg-grpc"),
        options=[
            ("grpc.max_receive_message_length", limit),
            ("grpc.max_send_message_length", limit),
        ],
    )
    mreg_pb2_grpc.add_RegistryServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise UsageError(f"cannot listen on {host}:{port}: {error}") from None
    if not bound:
        raise UsageError(f"cannot listen on {host}:{port}", hint="choose another --grpc-port")
    server.start()
    return server


# -- the service ------------------------------------------------------------------------------


class RegistryService:
    """``mreg.v1.Registry`` over the repository at ``root``."""

    def __init__(
        self, served: operations.Served, access: Access, max_upload: int = DEFAULT_MAX_UPLOAD
    ) -> None:
        self.served = served
        self.access = access
        self.max_upload = max_upload

    # -- who calls, and the registry it gets

    def _reader(self, context: grpc.ServicerContext) -> Identity:
        return self.access.identify(_token(context))

    def _registry(self) -> ModelRegistry:
        return self.served.registry

    def _repo(self) -> Repo:
        return self.served.repo

    def _write(self, identity: Identity, action: Callable[[ModelRegistry], T]) -> T:
        """``action`` alone in this process, its commits authored by the caller."""
        with self.served.writing(identity.name) as registry:
            return action(registry)

    # -- metadata

    @grpc_status.unary
    def Info(self, request: mreg_pb2.InfoRequest, context: Any) -> mreg_pb2.InfoReply:
        from mreg.protocol import mreg_pb2

        caller = self._reader(context)
        return mreg_pb2.InfoReply(
            version=mreg.__version__,
            accepts_writes=self.access.accepts_writes,
            caller=caller.name,
        )

    @grpc_status.unary
    def ListArtifacts(
        self, request: mreg_pb2.ListArtifactsRequest, context: Any
    ) -> mreg_pb2.ArtifactList:
        from mreg.protocol import mreg_pb2

        self._reader(context)
        if request.kind not in ("", "model", "dataset"):
            raise UsageError(f"kind must be 'model' or 'dataset', not {request.kind!r}")
        found = [t for t in self._repo().ls() if request.kind in ("", t.manifest.kind)]
        return mreg_pb2.ArtifactList(artifacts=[grpc_messages.artifact(t) for t in found])

    @grpc_status.unary
    def ShowArtifact(self, request: mreg_pb2.ArtifactRequest, context: Any) -> mreg_pb2.Artifact:
        self._reader(context)
        return grpc_messages.artifact(self._repo().show(self.served.resolved(request.spec)))

    @grpc_status.unary
    def ListModels(self, request: mreg_pb2.ListModelsRequest, context: Any) -> mreg_pb2.EntryList:
        self._reader(context)
        model_type, filters = request.model_type or None, dict(request.filters)
        return self.served.list_models(model_type, filters, grpc_messages.entries)

    @grpc_status.unary
    def ListVersions(self, request: mreg_pb2.ModelRequest, context: Any) -> mreg_pb2.VersionList:
        from mreg.protocol import mreg_pb2

        self._reader(context)
        return mreg_pb2.VersionList(versions=self._registry().versions(_name(request.name)))

    @grpc_status.unary
    def GetModelInfo(self, request: mreg_pb2.ModelRequest, context: Any) -> mreg_pb2.ModelEntry:
        self._reader(context)
        name = _name(request.name)
        return self.served.entry(name, request.version or "latest", codec.entry_message)

    @grpc_status.unary
    def Search(self, request: mreg_pb2.SearchRequest, context: Any) -> mreg_pb2.EntryList:
        self._reader(context)
        return self.served.search(request.query, request.latest, grpc_messages.entries)

    @grpc_status.unary
    def Validate(self, request: mreg_pb2.ValidateRequest, context: Any) -> mreg_pb2.Report:
        from mreg.protocol import mreg_pb2

        self._reader(context)
        report = self._registry().validate_registry(load=request.load)
        return mreg_pb2.Report(json=codec.to_json(report), ok=report.ok)

    @grpc_status.unary
    def Stats(self, request: mreg_pb2.StatsRequest, context: Any) -> mreg_pb2.Report:
        from mreg.protocol import mreg_pb2

        self._reader(context)
        return mreg_pb2.Report(json=codec.to_json(self._registry().stats()), ok=True)

    # -- stage moves and removal (tags only: no data to push)

    @grpc_status.unary
    def Stage(self, request: mreg_pb2.StageRequest, context: Any) -> mreg_pb2.TagList:
        caller = self.access.authorize_write(_token(context))
        name = _name(request.name)
        return grpc_messages.tags(
            [self.served.stage(caller.name, name, request.version, request.stage)]
        )

    @grpc_status.unary
    def Unstage(self, request: mreg_pb2.StageRequest, context: Any) -> mreg_pb2.TagList:
        caller = self.access.authorize_write(_token(context))
        name = _name(request.name)
        return grpc_messages.tags([self.served.unstage(caller.name, name, request.stage)])

    @grpc_status.unary
    def Deprecate(self, request: mreg_pb2.ModelRequest, context: Any) -> mreg_pb2.TagList:
        caller = self.access.authorize_write(_token(context))
        name = _name(request.name)
        return grpc_messages.tags([self._write(caller, lambda r: r.deprecate(name))])

    @grpc_status.unary
    def Remove(self, request: mreg_pb2.ModelRequest, context: Any) -> mreg_pb2.TagList:
        caller = self.access.authorize_write(_token(context))
        name = _name(request.name)
        return grpc_messages.tags(
            self._write(caller, lambda r: r.remove_versions(name, request.version or None))
        )

    # -- bytes out

    @grpc_status.streaming
    def Download(
        self, request: mreg_pb2.DownloadRequest, context: Any
    ) -> Iterator[mreg_pb2.FileChunk]:
        self._reader(context)
        found = self.served.download(request.target)
        yield from grpc_messages.file_chunks(found, request.offset)

    @grpc_status.streaming
    def Export(self, request: mreg_pb2.ExportRequest, context: Any) -> Iterator[mreg_pb2.FileChunk]:
        self._reader(context)
        found = self.served.export(_name(request.name), request.version or "latest", request.format)
        yield from grpc_messages.file_chunks(found, 0)

    @grpc_status.streaming
    def ReadRows(self, request: mreg_pb2.RowsRequest, context: Any) -> Iterator[mreg_pb2.RowBatch]:
        from mreg.protocol import mreg_pb2

        self._reader(context)
        name = _name(request.name)
        rows = self.served.rows(
            f"{name}@{request.rev}" if request.rev else name,
            list(request.columns),
            request.filter or None,
            request.offset or None,
            request.limit or None,
            request.batch_size or None,
        )
        sent = False
        for batch in rows:
            sent = True
            yield mreg_pb2.RowBatch(arrow_ipc=grpc_messages.ipc(batch))
        if not sent:  # no rows: one empty batch still tells the schema
            import pyarrow as pa

            empty = pa.RecordBatch.from_pylist([], schema=rows.schema)
            yield mreg_pb2.RowBatch(arrow_ipc=grpc_messages.ipc(empty))

    # -- bytes in

    @grpc_status.unary
    def Register(
        self, request_iterator: Iterator[mreg_pb2.UploadMessage], context: Any
    ) -> mreg_pb2.ModelEntry:
        caller = self.access.authorize_write(_token(context))  # before a byte is read
        first = next(request_iterator, None)
        if first is None or first.WhichOneof("part") != "header":
            raise UsageError("an upload starts with its header")
        header = first.header
        name = _name(header.name)
        files = [(f.path, f.size) for f in header.files]
        files = upload.check_files(files, header.folder, self.max_upload)
        fields = upload.metadata(header.metadata_json)
        fields["performance_metrics"] = dict(header.performance_metrics)
        with self._repo().cache.staging() as stage:
            folder = stage / ("model" if header.folder else "upload")
            chunks = (
                m.chunk if m.WhichOneof("part") == "chunk" else _no_header(m)
                for m in request_iterator
            )
            upload.receive(chunks, files, folder)
            source = folder if header.folder else folder / files[0][0]
            for key, value in (
                ("model_format", header.model_format),
                ("model_type", header.model_type),
                ("version", header.version),
            ):
                if value:
                    fields[key] = value
            entry = self.served.register(caller.name, name, source, fields)
        return codec.entry_message(entry)


# -- helpers ----------------------------------------------------------------------------------


def _token(context: grpc.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


def _name(name: str) -> str:
    """An artifact name, never a path (``../x``, ``/etc``): UsageError otherwise."""
    return manifests.check_name(name)


def _no_header(message: mreg_pb2.UploadMessage) -> bytes:
    raise UsageError("an upload sends one header, then chunks only")


def _first_line(error: BaseException) -> str:
    from mreg.errors import one_line

    return one_line(error)


# -- running it alone -------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """``python -m mreg.server.grpc_service ROOT [--host H] [--port P] [--token-file F]
    [--read-only] [--max-upload-mb N]``: serve until SIGTERM or Ctrl-C."""
    parser = argparse.ArgumentParser(prog="python -m mreg.server.grpc_service")
    parser.add_argument("root", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--token-file", type=Path)
    parser.add_argument("--read-only", action="store_true")
    parser.add_argument("--max-upload-mb", type=int, default=DEFAULT_MAX_UPLOAD >> 20)
    args = parser.parse_args(argv)
    try:
        access = load_access(args.token_file, args.read_only)
        server = start(args.root, args.host, args.port, access, max_upload=args.max_upload_mb << 20)
    except MregError as error:
        print(f"mreg: {error}", file=sys.stderr)
        return 1
    mode = "accepts writes" if access.accepts_writes else "read-only"
    print(
        f"mreg gRPC server on grpc://{args.host}:{args.port} ({mode})", file=sys.stderr, flush=True
    )
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    with contextlib.suppress(KeyboardInterrupt):
        stopped.wait()
    server.stop(grace=5).wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
