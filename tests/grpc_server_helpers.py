"""A real gRPC server of mreg for tests: ``python -m mreg.server.grpc_service`` as a subprocess on
a free loopback port, with a token file of one writer and one reader."""

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

WRITE_TOKEN = "w" * 8 + "-alice-write-token"
READ_TOKEN = "r" * 8 + "-bob-read-token-x"
WORKTREE = Path(__file__).resolve().parent.parent


@dataclass
class GrpcServer:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_tokens(path: Path) -> Path:
    path.write_text(f"alice write {WRITE_TOKEN}\nbob read {READ_TOKEN}\n")
    return path


@contextmanager
def grpc_server(root: Path, tmp: Path, *extra: str) -> Iterator[GrpcServer]:
    """The server of the repository at ``root``, ready to answer; stopped afterwards."""
    import grpc

    port = free_port()
    tokens = write_tokens(tmp / "tokens.txt")
    log = tmp / f"grpc-server-{port}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(WORKTREE), str(WORKTREE / "tests")])}
    command = [sys.executable, "-m", "mreg.server.grpc_service", str(root), "--port", str(port)]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [*command, "--token-file", str(tokens), *extra], stdout=out, stderr=out, env=env
        )
    server = GrpcServer(f"grpc://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 30
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            while True:
                try:
                    grpc.channel_ready_future(channel).result(timeout=1)
                    break
                except grpc.FutureTimeoutError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"the server did not start: {log.read_text()}") from None
        yield server
    finally:
        server.stop()
