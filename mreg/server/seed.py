"""The seed system's REST paths (``/model-registry/...``), as thin aliases of ``/api/v1``.

Programs written against the model registry we replace keep working: each path answers what
its ``/api/v1`` twin answers (same handler, same JSON shapes, same errors).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

SEED = "/model-registry"
# seed path, method -> the /api/v1 path answering it
ALIASES = {
    ("/models", "GET"): "/api/v1/models",
    ("/models/{name}", "GET"): "/api/v1/models/{name}",
    ("/models/{name}", "DELETE"): "/api/v1/models/{name}",
    ("/models/{name}/export", "GET"): "/api/v1/models/{name}/export",
    ("/validate", "GET"): "/api/v1/validate",
    ("/stats", "GET"): "/api/v1/stats",
}


def add_seed_routes(app: FastAPI) -> None:
    """Mount every alias on ``app``, plus the two whose paths differ in shape (upload,
    download by name) and register-from-hub, which runs as a job."""
    routes = {
        (r.path, m): r for r in app.routes if isinstance(r, APIRoute) for m in r.methods or ()
    }
    for (path, method), twin in ALIASES.items():
        route = routes[(twin, method)]
        app.add_api_route(SEED + path, route.endpoint, methods=[method], tags=["seed"])
    register = routes[("/api/v1/models/{name}/versions", "POST")].endpoint
    download = routes[("/api/v1/artifacts/{spec:path}/download", "GET")].endpoint

    async def upload(request: Request, name: str) -> Any:
        return await register(name=name, request=request, authorization=_header(request))

    def download_by_name(name: str, request: Request, version: str = "latest") -> Any:
        from mreg.server.operations import check_name

        spec = check_name(name) if version == "latest" else f"{name}@{version}"
        if version.startswith("#"):
            spec = f"{name}{version}"
        return download(spec=spec, request=request, authorization=_header(request))

    app.add_api_route(
        f"{SEED}/models/upload", upload, methods=["POST"], status_code=201, tags=["seed"]
    )
    app.add_api_route(
        f"{SEED}/models/{{name}}/download", download_by_name, methods=["GET"], tags=["seed"]
    )


def _header(request: Request) -> str | None:
    return request.headers.get("authorization")
