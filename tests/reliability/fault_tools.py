"""Tools of the reliability suite: the real ``mreg`` console script as a process, tmpfs and
read-only mounts, clones, checks of the invariants, and a fault-injecting S3 proxy.

Imported by the ``test_*`` files beside it (pytest puts this folder on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
from helpers import git

WORKTREE = Path(__file__).resolve().parents[2]
MREG = [sys.executable, "-c", "from mreg.cli import script; script()"]


# -- the real command, as a process ---------------------------------------------------------


def mreg_env() -> dict[str, str]:
    """The test's environment, with this work tree's ``mreg`` first on the path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(WORKTREE), env.get("PYTHONPATH")]))
    return env


def start_mreg(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``mreg ARGS`` in ``cwd`` as a separate process (the console script's entry point)."""
    return subprocess.Popen(
        [*MREG, *args],
        cwd=cwd,
        env=mreg_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@dataclass
class Finished:
    exit_code: int
    stdout: str
    stderr: str


def run_mreg(cwd: Path, *args: str, timeout: float = 120) -> Finished:
    process = start_mreg(cwd, *args)
    out, err = process.communicate(timeout=timeout)
    return Finished(process.returncode, out, err)


def kill_after(process: subprocess.Popen[str], delay: float, sig: int) -> Finished:
    """Send ``sig`` to ``process`` after ``delay`` seconds (unless it ended before); wait."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=delay)
    if process.poll() is None:
        process.send_signal(sig)
    out, err = process.communicate(timeout=120)
    return Finished(process.returncode, out, err)


def killed(result: Finished) -> bool:
    return result.exit_code in (-signal.SIGKILL, -signal.SIGINT, 130)


# -- data and repositories ------------------------------------------------------------------


def make_model(path: Path, seed: int = 0, tensors: int = 8, kib: int = 256) -> Path:
    """A safetensors file of ``tensors`` float32 tensors of ``kib`` KiB each."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    floats = kib * 1024 // 4
    data = {
        f"layer{i}.weight": rng.standard_normal(floats, dtype=np.float32) for i in range(tensors)
    }
    save_file(data, str(path))
    return path


def clone(repo: Path, dest: Path) -> Path:
    """A git clone of ``repo``: its manifests and config, an empty cache."""
    git(dest.parent, "clone", "-q", str(repo), str(dest))
    return dest


def recorded_files(root: Path) -> dict[str, str]:
    """sha256 by cache path of every data file the work tree's manifests reference."""
    found = {}
    for manifest in root.rglob("*.mreg.toml"):
        if ".git" in manifest.relative_to(root).parts:
            continue
        for entry in tomllib.loads(manifest.read_text())["lance"]["files"]:
            found[entry["path"]] = entry["sha256"]
    return found


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_cache_holds_only_good_files(root: Path, known: dict[str, str]) -> None:
    """Every data file in the cache has the sha256 some manifest (``known``) records for it."""
    data = root / ".mreg" / "cache" / "data"
    for path in data.rglob("*") if data.exists() else []:
        if path.is_file():
            rel = path.relative_to(root / ".mreg" / "cache").as_posix()
            assert rel in known, f"unknown file in the cache: {rel}"
            assert sha256(path.read_bytes()) == known[rel], f"corrupt file in the cache: {rel}"


def temp_files(root: Path) -> list[str]:
    """Temporary files a writer leaves beside its target (``.NAME.XXXXXXXX.tmp``) in the work
    tree, outside .git and .mreg."""
    found = []
    for path in root.rglob(".*.tmp"):
        parts = path.relative_to(root).parts
        if parts[0] not in (".git", ".mreg"):
            found.append(path.relative_to(root).as_posix())
    return found


# -- mounts: a full disk, a read-only folder, another file system --------------------------


def mount_refusal() -> str | None:
    """Why tmpfs mounts cannot be made here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root to mount a tmpfs (chmod does not stop root from writing)"
    probe = tempfile.mkdtemp(prefix="mreg-mount-probe-")
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", probe],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            return f"mount -t tmpfs is not permitted here: {done.stderr.strip()}"
        subprocess.run(["umount", probe], check=True)
        return None
    except FileNotFoundError:
        return "no mount command here"
    finally:
        os.rmdir(probe)


class Mounts:
    """Mounts made by one test; all undone at its end."""

    def __init__(self) -> None:
        self.made: list[Path] = []

    def tmpfs(self, path: Path, size: str) -> Path:
        """An empty tmpfs of ``size`` (``1m``, ``20m``) at ``path``: a small disk of its own."""
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], check=True
        )
        self.made.append(path)
        return path

    def read_only(self, path: Path) -> Path:
        """``path`` itself, from now on on a read-only bind mount (root cannot write it)."""
        subprocess.run(["mount", "--bind", str(path), str(path)], check=True)
        self.made.append(path)
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True)
        return path

    def undo(self, path: Path) -> None:
        subprocess.run(["umount", str(path)], check=True)
        self.made.remove(path)

    def undo_all(self) -> None:
        for path in reversed(self.made):
            if subprocess.run(["umount", str(path)], capture_output=True).returncode:
                subprocess.run(["umount", "-l", str(path)], capture_output=True)
        self.made.clear()


# -- a fault-injecting S3 proxy --------------------------------------------------------------


@dataclass
class Fault:
    """What the proxy does to the requests that match (method, and a part of the path).

    kind: ``status`` (answer ``status`` without asking the server), ``cut`` (send the headers
    and only ``after`` bytes of the body, then close), ``cut_upload`` (pass on only ``after``
    bytes of the request body, then hang up on both), ``flip`` (flip one bit of the body),
    ``lost_ack`` (the server applies the request; the client gets no answer), ``delay``
    (wait ``seconds`` first). ``times``: how many matching requests it hits (then it is spent).
    """

    kind: str
    methods: tuple[str, ...] = ("GET",)
    path_part: str = "/data/"
    times: int = 1
    status: int = 503
    after: int = 100
    seconds: float = 0.0
    hits: int = 0

    def take(self, method: str, path: str) -> bool:
        if self.hits >= self.times or method not in self.methods or self.path_part not in path:
            return False
        self.hits += 1
        return True


_ERROR_BODY = (
    '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
    "<Message>injected by the test proxy</Message></Error>"
)
_CODES = {500: "InternalError", 503: "SlowDown"}


@dataclass
class FaultProxy:
    """An HTTP proxy on 127.0.0.1 in front of the S3 server, in a thread, with a fault plan.

    Requests go through unchanged (the Host header too, so signatures hold) unless a fault in
    ``faults`` takes them. ``die()`` closes the port: the remote is gone.
    """

    upstream: str
    faults: list[Fault] = field(default_factory=list)
    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        host, _, port = self.upstream.removeprefix("http://").partition(":")
        self._upstream = (host, int(port))
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        proxy = self

        class Handler(_Handler):
            owner = proxy

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = int(server.server_address[1])
        self._server = server
        threading.Thread(target=server.serve_forever, daemon=True).start()

    def die(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def fault_for(self, method: str, path: str) -> Fault | None:
        with self._lock:
            self.requests.append((method, path))
            for fault in self.faults:
                if fault.take(method, path):
                    return fault
        return None

    def send_part(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes, after: int
    ) -> None:
        """Send the request with only ``after`` bytes of its body, then hang up: the server
        sees an upload cut short."""
        with socket.create_connection(self._upstream, timeout=10) as sock:
            head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)
            sock.sendall(head.encode("latin-1") + b"\r\n" + body[:after])
        time.sleep(0.05)

    def forward(self, method: str, path: str, headers: list[tuple[str, str]], body: bytes):  # type: ignore[no-untyped-def]
        connection = http.client.HTTPConnection(*self._upstream, timeout=60)
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders(body if body else None)
        response = connection.getresponse()
        data = response.read()
        connection.close()
        return response.status, response.getheaders(), data


def _flipped(data: bytes) -> bytes:
    """``data`` with one bit flipped, in the middle."""
    changed = bytearray(data)
    changed[len(changed) // 2] ^= 0x10
    return bytes(changed)


class _Handler(BaseHTTPRequestHandler):
    owner: FaultProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", ""):
            raw = b""
            while True:
                line = self.rfile.readline()
                raw += line
                size = int(line.split(b";")[0].strip(), 16)
                raw += self.rfile.read(size + 2)
                if size == 0:
                    return raw
        return self.rfile.read(int(self.headers.get("Content-Length", 0)))

    def _handle(self) -> None:
        body = self._body()
        fault = self.owner.fault_for(self.command, self.path)
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if fault is not None and fault.kind == "status":
            self._answer(fault.status, [], _ERROR_BODY.format(code=_CODES[fault.status]).encode())
            return
        if fault is not None and fault.kind == "cut_upload":
            self.owner.send_part(
                self.command, self.path, list(self.headers.items()), body, fault.after
            )
            self._drop()
            return
        if fault is not None and fault.kind == "flip" and self.command in ("PUT", "POST"):
            body = _flipped(body)
        status, headers, data = self.owner.forward(
            self.command, self.path, list(self.headers.items()), body
        )
        if fault is not None and fault.kind == "lost_ack":
            self._drop()
            return
        if fault is not None and fault.kind == "flip" and self.command == "GET" and data:
            data = _flipped(data)
        if fault is not None and fault.kind == "cut":
            self._answer(status, headers, data, send=min(fault.after, len(data)))
            self._drop()
            return
        self._answer(status, headers, data)

    def _answer(
        self, status: int, headers: list[tuple[str, str]], data: bytes, send: int | None = None
    ) -> None:
        self.send_response_only(status)
        head = self.command == "HEAD"  # no body; the length is the object's
        for name, value in headers:
            if name.lower() in ("transfer-encoding", "connection"):
                continue
            if name.lower() != "content-length" or head:
                self.send_header(name, value)
        if not head:
            self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data if send is None else data[:send])
        self.wfile.flush()

    def _drop(self) -> None:
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _handle
