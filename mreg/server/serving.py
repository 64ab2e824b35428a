"""``mreg serve``: the REST/WebSocket application on uvicorn and, when the gRPC half is
installed, the gRPC server, in one process, until Ctrl-C or SIGTERM."""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mreg.server.access import Access

log = logging.getLogger("mreg.server")


def serve(
    root: Path,
    access: Access,
    host: str = "127.0.0.1",
    port: int = 8080,
    grpc_port: int = 50051,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the repository at ``root`` until stopped."""
    import uvicorn

    from mreg.server.rest import create_app

    if not access.accepts_writes:
        say("read-only: no token may write (start with --token-file naming a 'write' token)")
    if access.open_to_anonymous_reads:
        say(f"no tokens: anyone who reaches {host}:{port} may read")
    app = create_app(root, access)
    grpc_server = _start_grpc(root, host, grpc_port, access, say, app.state.served)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", access_log=False, ws="websockets-sansio",
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    say(f"serving {root} on http://{host}:{port}/api/v1")
    try:
        uvicorn.Server(config).run()
    finally:
        app.state.jobs.shutdown()
        if grpc_server is not None:
            grpc_server.stop(grace=2)


def _start_grpc(
    root: Path, host: str, port: int, access: Access, say: Callable[[str], None], served: Any
) -> Any:
    if port == 0:
        return None
    if importlib.util.find_spec("mreg.server.grpc_service") is None:
        say("gRPC: not served (mreg.server.grpc_service is not installed)")
        return None
    from mreg.server import grpc_service  # type: ignore[attr-defined,unused-ignore]

    server = grpc_service.start(root, host, port, access, served=served)
    say(f"serving gRPC on {host}:{port}")
    return server
