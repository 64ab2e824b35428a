"""The REST and WebSocket half of ``mreg serve``: a FastAPI application under ``/api/v1``.

FastAPI (on Starlette and uvicorn) rather than bare Starlette: it writes the OpenAPI document
(``/api/v1/openapi.json``) from the routes themselves, answers malformed JSON bodies and query
parameters with 422 on its own, and its per-request cost over Starlette is small for handlers
that take the raw ``Request``. Handlers are thin: parse, call ``mreg.server.operations``,
answer; every ``MregError`` becomes ``{"error": ..., "hint": ...}`` with its status
(``statuses.http_status``). Plain ``def`` handlers run in the thread pool, so git and Lance
never block the event loop.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Header, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.exceptions import HTTPException

from mreg import __version__
from mreg.errors import MregError, UsageError
from mreg.server import multipart as uploads
from mreg.server.access import Access, Identity
from mreg.server.events import Events, Jobs, check_wait
from mreg.server.operations import Download, Served, check_name
from mreg.server.statuses import http_status

PREFIX = "/api/v1"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
Token = Annotated[str | None, Header(alias="authorization", include_in_schema=False)]


def plain(value: Any) -> Any:
    """Dataclasses, tuples and enums as JSON values. Fields left out of a dataclass's repr are
    the server's own (an entry's ``root``, the served work tree) and are not sent."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        shown = (f for f in dataclasses.fields(value) if f.repr)
        return {f.name: plain(getattr(value, f.name)) for f in shown}
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, Enum):
        return value.value
    return value


def json_body(value: Any) -> bytes:
    """``value`` as the JSON that ``JSONResponse`` would send."""
    text = json.dumps(plain(value), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return text.encode()


def describe(error: MregError) -> dict[str, Any]:
    return {"error": error.message, "hint": error.hint}


def create_app(root: Path, access: Access, upload_limit: int | None = None) -> FastAPI:
    """The application serving the repository at ``root`` to the callers ``access`` admits."""
    events = Events()
    served = Served(root, events.publish)
    jobs = Jobs(events, describe)
    limit = upload_limit or int(os.environ.get("MREG_SERVER_MAX_UPLOAD", uploads.DEFAULT_LIMIT))
    app = FastAPI(
        title="mreg",
        version=__version__,
        openapi_url=f"{PREFIX}/openapi.json",
        docs_url=f"{PREFIX}/docs",
        redoc_url=None,
    )
    app.state.served, app.state.events, app.state.jobs = served, events, jobs

    def reader(token: str | None) -> Identity:
        return access.identify(_bearer(token))

    def writer(token: str | None) -> Identity:
        return access.authorize_write(_bearer(token))

    @app.exception_handler(MregError)
    async def _mreg_error(request: Request, error: MregError) -> JSONResponse:
        return JSONResponse(describe(error), status_code=http_status(error))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        text = f"invalid request: {where}: {first.get('msg', 'malformed')}"
        return JSONResponse({"error": text, "hint": "see /api/v1/openapi.json"}, 422)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, error: HTTPException) -> JSONResponse:
        return JSONResponse({"error": str(error.detail), "hint": None}, error.status_code)

    # -- health, artifacts ---------------------------------------------------------------

    @app.get(f"{PREFIX}/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "version": __version__, "read_only": not access.accepts_writes}

    @app.get(f"{PREFIX}/artifacts")
    def artifacts(authorization: Token = None, kind: str | None = None) -> list[dict[str, Any]]:
        reader(authorization)
        found = served.repo.ls()
        return [_artifact(t.manifest_rel, t.manifest, t.rev) for t in found
                if kind is None or t.manifest.kind == kind]  # fmt: skip

    @app.get(f"{PREFIX}/artifacts/{{spec:path}}/log")
    def log(spec: str, authorization: Token = None) -> Any:
        reader(authorization)
        _, manifest, _ = served.target(spec)
        return plain(served.repo.log(manifest.name))

    @app.get(f"{PREFIX}/artifacts/{{spec:path}}/download")
    def download(spec: str, request: Request, authorization: Token = None) -> FileResponse:
        reader(authorization)
        return _file(served.download(spec))

    @app.get(f"{PREFIX}/artifacts/{{spec:path}}/rows")
    def rows(
        spec: str,
        authorization: Token = None,
        columns: str | None = None,
        filter: str | None = None,
        offset: Annotated[int | None, Query(ge=0)] = None,
        limit: Annotated[int | None, Query(ge=0)] = None,
    ) -> StreamingResponse:
        reader(authorization)
        wanted = [c for c in (columns or "").split(",") if c]
        batches = served.rows(spec, wanted, filter, offset, limit)
        return StreamingResponse(_ipc_stream(batches), media_type=ARROW_STREAM)

    @app.get(f"{PREFIX}/artifacts/{{spec:path}}")
    def show(spec: str, authorization: Token = None) -> dict[str, Any]:
        reader(authorization)
        return _artifact(*served.target(spec))

    @app.get(f"{PREFIX}/diff")
    def diff(authorization: Token = None, a: str | None = None, b: str | None = None) -> Any:
        reader(authorization)
        return plain(served.repo.diff(a, b))

    @app.get(f"{PREFIX}/status")
    def status(authorization: Token = None, remote: str | None = None) -> Any:
        reader(authorization)
        return plain(served.repo.status(remote))

    # -- registry reads ------------------------------------------------------------------

    @app.get(f"{PREFIX}/models")
    def models(authorization: Token = None) -> Response:
        reader(authorization)
        return _json(served.models(json_body))

    @app.get(f"{PREFIX}/versions")
    def versions(
        request: Request, authorization: Token = None, model_type: str | None = None
    ) -> Response:
        reader(authorization)
        filters = {k: v for k, v in request.query_params.items() if k != "model_type"}
        return _json(served.list_models(model_type, filters, json_body))

    @app.get(f"{PREFIX}/search")
    def search(authorization: Token = None, q: str = "", latest: bool = False) -> Response:
        reader(authorization)
        return _json(served.search(q, latest, json_body))

    @app.get(f"{PREFIX}/models/{{name}}")
    def info(name: str, authorization: Token = None, version: str = "latest") -> Response:
        reader(authorization)
        return _json(served.entry(name, version, json_body))

    @app.get(f"{PREFIX}/validate")
    def validate(authorization: Token = None, load: bool = True) -> Any:
        reader(authorization)
        return plain(served.registry.validate_registry(load=load))

    @app.get(f"{PREFIX}/stats")
    def stats(authorization: Token = None) -> Any:
        reader(authorization)
        return plain(served.registry.stats())

    @app.get(f"{PREFIX}/models/{{name}}/export")
    def export(
        name: str, authorization: Token = None, version: str = "latest", format: str = "onnx"
    ) -> FileResponse:
        reader(authorization)
        found = served.export(check_name(name), version, format)
        return _file(found)

    # -- registry writes -----------------------------------------------------------------

    @app.post(f"{PREFIX}/models/{{name}}/versions", status_code=201)
    async def register(name: str, request: Request, authorization: Token = None) -> Any:
        who = writer(authorization)
        check_name(name)
        return await _register(served, request, who, name, limit)

    @app.post(f"{PREFIX}/models/{{name}}/stages")
    def stage(
        name: str,
        version: Annotated[str, Body()],
        stage: Annotated[str, Body()],
        authorization: Token = None,
    ) -> dict[str, str]:
        return {"tag": served.stage(writer(authorization).name, name, version, stage)}

    @app.delete(f"{PREFIX}/models/{{name}}/stages/{{stage}}")
    def unstage(name: str, stage: str, authorization: Token = None) -> dict[str, str]:
        return {"tag": served.unstage(writer(authorization).name, name, stage)}

    @app.post(f"{PREFIX}/models/{{name}}/deprecate")
    def deprecate(name: str, authorization: Token = None) -> dict[str, str]:
        who = writer(authorization)
        with served.writing(who.name) as registry:
            return {"tag": registry.deprecate(check_name(name))}

    @app.delete(f"{PREFIX}/models/{{name}}")
    def remove(name: str, authorization: Token = None, version: str | None = None) -> Any:
        who = writer(authorization)
        with served.writing(who.name) as registry:
            return {"tags": registry.remove_versions(check_name(name), version)}

    # -- jobs and events -----------------------------------------------------------------

    @app.post(f"{PREFIX}/jobs/validate", status_code=202)
    def validate_job(authorization: Token = None, load: bool = True) -> Any:
        reader(authorization)

        def work(report: Any) -> Any:
            report(0.0)
            return plain(served.registry.validate_registry(load=load))

        return jobs.start("validate", work).as_dict()

    @app.post(f"{PREFIX}/jobs/export", status_code=202)
    def export_job(
        name: Annotated[str, Body()],
        authorization: Token = None,
        version: Annotated[str, Body()] = "latest",
        format: Annotated[str, Body()] = "onnx",
    ) -> Any:
        reader(authorization)
        check_name(name)

        def work(report: Any) -> Any:
            report(0.0)
            found = served.export(name, version, format)
            return {"sha256": found.sha256, "size": found.size, "filename": found.filename}

        return jobs.start("export", work).as_dict()

    @app.get(f"{PREFIX}/jobs/{{job_id}}")
    async def job(job_id: str, authorization: Token = None, wait: float = 0.0) -> Any:
        reader(authorization)
        found = jobs.get(job_id)
        if check_wait(wait):
            import anyio.to_thread

            await anyio.to_thread.run_sync(found.finished.wait, wait)
        return found.as_dict()

    @app.websocket(f"{PREFIX}/events")
    async def subscribe(socket: WebSocket) -> None:
        token = socket.headers.get("authorization") or socket.query_params.get("token")
        try:
            access.identify(_bearer(token) if token and " " in token else token)
        except MregError as error:
            await socket.close(code=4401, reason=error.message)
            return
        await socket.accept()
        queue = events.subscribe()
        try:
            while True:
                await socket.send_json(await queue.get())
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            events.unsubscribe(queue)

    from mreg.server.seed import add_seed_routes

    add_seed_routes(app)
    return app


async def _register(served: Served, request: Request, who: Identity, name: str, limit: int) -> Any:
    """Receive the multipart upload into ``.mreg/tmp``, then register it (in a worker thread)."""
    import json

    import anyio.to_thread

    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise uploads.UploadTooLarge(
            f"the upload is larger than this server's limit of {limit:,} bytes"
        )
    with served.repo.cache.staging(suffix="-upload") as folder:
        got = await uploads.receive(
            request.stream(), request.headers.get("content-type", ""), folder, limit
        )
        try:
            fields = json.loads(got.fields.get("metadata") or "{}")
        except json.JSONDecodeError as error:
            raise UsageError(f"metadata is not JSON: {error.msg}") from None
        if not isinstance(fields, dict):
            raise UsageError("metadata must be a JSON object")
        for key in ("version", "model_format", "model_type"):
            if got.fields.get(key):
                fields[key] = got.fields[key]
        path = got.model_path()
        entry = await anyio.to_thread.run_sync(served.register, who.name, name, path, fields)
    return plain(entry)


def _ipc_stream(batches: Any) -> Iterator[bytes]:
    """The Arrow IPC stream of ``batches``, a message at a time."""
    import io

    import pyarrow as pa

    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, batches.schema) as writer:
        for batch in batches:
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)


def _drain(sink: Any) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return bytes(data)


class _LargeChunks(FileResponse):
    # Starlette reads a file in 64 KiB pieces, one event-loop turn each: a 1 GiB download was
    # 16,384 turns per stream. 1 MiB pieces make it 1,024.
    chunk_size = 1 << 20


def _file(found: Download) -> FileResponse:
    """A file with its sha256 as ETag; Starlette answers Range requests (206) from it."""
    headers = {"etag": f'"{found.sha256}"', "x-mreg-sha256": found.sha256}
    return _LargeChunks(
        found.path, headers=headers, filename=found.filename, media_type="application/octet-stream"
    )


def _json(body: bytes) -> Response:
    return Response(body, media_type="application/json")


def _artifact(manifest_rel: str, manifest: Any, rev: str | None) -> dict[str, Any]:
    return {
        "name": manifest.name,
        "kind": manifest.kind,
        "path": manifest.path,
        "manifest": manifest_rel,
        "rev": rev,
        "format": manifest.source.format,
        "sha256": manifest.source.sha256,
        "files": len(manifest.files),
        "size": sum(f.size for f in manifest.files),
    }


def _bearer(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" else None
