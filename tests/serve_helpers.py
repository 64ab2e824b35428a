"""Starting ``mreg serve`` as a real subprocess on a free loopback port, for the server tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

WRITER = "w" * 24
READER = "r" * 24
TOKENS = f"alice write {WRITER}\nbob read {READER}\n"


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes]
    log: Path
    grpc_url: str | None = None

    def headers(self, token: str | None = WRITER) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if token else {}

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def mreg_serve(
    root: Path, *args: str, tokens: str | None = TOKENS, grpc: bool = False
) -> Iterator[Server]:
    """``mreg serve`` in ``root`` (with a token file holding ``tokens``), ready to answer; with
    ``grpc``, its gRPC port too."""
    port = free_port()
    grpc_port = free_port() if grpc else 0
    command = [sys.executable, "-c", "from mreg.cli import script; script()", "serve"]
    command += ["--port", str(port), "--grpc-port", str(grpc_port), *args]
    if tokens is not None:
        token_file = root.parent / f"tokens-{port}"
        token_file.write_text(tokens)
        command += ["--token-file", str(token_file)]
    log = root.parent / f"serve-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, cwd=root, stdout=out, stderr=subprocess.STDOUT, env=os.environ.copy()
        )
    grpc_url = f"grpc://127.0.0.1:{grpc_port}" if grpc else None
    server = Server(f"http://127.0.0.1:{port}", process, log, grpc_url)
    try:
        _wait_ready(server)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


def _wait_ready(server: Server) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"mreg serve exited: {server.log.read_text()}")
        try:
            if httpx.get(f"{server.url}/api/v1/health", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"mreg serve did not answer: {server.log.read_text()}")
