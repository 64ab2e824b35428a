"""``mreg serve``: the repository over REST, WebSocket and gRPC (``mreg.server``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mreg.cli.root import app
from mreg.progress import stderr


@app.command()
def serve(
    host: Annotated[
        str, typer.Option(help="Address to bind (another than loopback exposes it).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="REST and WebSocket port.")] = 8080,
    grpc_port: Annotated[int, typer.Option("--grpc-port", help="gRPC port (0: no gRPC).")] = 50051,
    read_only: Annotated[bool, typer.Option("--read-only", help="Refuse every write.")] = False,
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file", help="Lines 'NAME read|write TOKEN' (also MREG_SERVER_TOKENS)."
        ),
    ] = None,
) -> None:
    """Serve this repository's registry and data: REST under /api/v1, events over WebSocket,
    gRPC. Without a token that may write, the server is read-only."""
    from mreg.repo import Repo
    from mreg.server.access import load_access
    from mreg.server.serving import serve as run_server

    root = Repo(".").root
    access = load_access(token_file, read_only=read_only)
    run_server(
        root,
        access,
        host,
        port,
        grpc_port,
        say=lambda text: stderr.print(text, markup=False, highlight=False),
    )
