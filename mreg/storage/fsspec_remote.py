"""Remotes on Google Cloud Storage, Azure Blob Storage, SSH/SFTP servers and (read-only) HTTP,
through the maintained fsspec file systems: gcsfs, adlfs, sshfs and fsspec's own HTTP.

The same guarantees as the S3 remote: many files move at once (the transfer engine's threads
share one fsspec event loop), large files go in parts (gcsfs's resumable upload, adlfs's staged
blocks, sshfs's pipelined SFTP writes), every download is hashed as it streams, and no partial
object is ever visible under its final name: GCS and Azure show an object only once its upload
is complete, and over SFTP a file is written under a hidden temporary name, then renamed.

Credentials come from each platform's own sources (Google's application-default credentials,
``AZURE_STORAGE_*`` variables, the SSH agent, ``~/.ssh/config`` and ``~/.ssh/id_*``) or from the
git-ignored ``.mreg/config.local.toml``; none is ever printed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from mreg.config import RemoteConfig
from mreg.errors import RemoteError, RemoteFileMissing, one_line
from mreg.progress import Advance
from mreg.storage.base import StoredFile
from mreg.storage.landing import CHUNK, Landing, stream_into

# Parts of a large upload (GCS resumable chunks, Azure blocks) and reads per request.
PART_SIZE = 16 << 20


@dataclass(frozen=True)
class Kind:
    """What differs between the stores: the package behind it and how writes behave."""

    label: str
    extra: str  # ``pip install "mreg[EXTRA]"``
    module: str
    atomic_put: bool  # the store shows an object only once its upload is complete
    read_only: bool = False


KINDS = {
    "gcs": Kind("Google Cloud Storage", "gcs", "gcsfs", atomic_put=True),
    "azure": Kind("Azure Blob Storage", "azure", "adlfs", atomic_put=True),
    "ssh": Kind("SSH", "ssh", "sshfs", atomic_put=False),
    "http": Kind("HTTP", "http", "aiohttp", atomic_put=True, read_only=True),
}


def filesystem(remote: RemoteConfig) -> tuple[Any, str]:
    """The fsspec file system that reaches ``remote``, and the remote's root path in it."""
    kind = KINDS[remote.kind]
    try:
        importlib.import_module(kind.module)
    except ImportError:
        raise RemoteError(
            f"remote '{remote.name}' ({remote.url}) is on {kind.label}, which needs the "
            f"'{kind.extra}' extra",
            hint=f'pip install "mreg[{kind.extra}]"',
        ) from None
    return _OPENERS[remote.kind](remote)


def split_container(url: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` (or ``az://container/a/b``) -> (``bucket``, ``a/b``); a container
    written ``container@account.dfs.core.windows.net`` loses its account part."""
    parts = urlsplit(url)
    container = parts.netloc.partition("@")[0]
    if not container:
        raise RemoteError(f"'{url}' names no bucket or container", hint="use SCHEME://BUCKET/PATH")
    return container, parts.path.strip("/")


def _gcs(remote: RemoteConfig) -> tuple[Any, str]:
    # The plain GCSFileSystem: gcsfs's default class first asks a gRPC control API for the
    # bucket's layout, which against an emulator or a proxy hangs ~60 s before giving up.
    from gcsfs.core import GCSFileSystem

    token: str | None = remote.credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if token is None and remote.endpoint_url:
        token = "anon"  # an emulator (fake-gcs-server) takes no credentials
    fs = GCSFileSystem(
        token=token,
        endpoint_url=remote.endpoint_url,
        skip_instance_cache=True,
        use_listings_cache=False,
    )
    bucket, prefix = split_container(remote.url)
    return fs, f"{bucket}/{prefix}".rstrip("/")


def _azure(remote: RemoteConfig) -> tuple[Any, str]:
    from adlfs import AzureBlobFileSystem

    account = remote.account_name
    host = urlsplit(remote.url).netloc.partition("@")[2]
    if host and not account:
        account = host.partition(".")[0]  # abfs://container@ACCOUNT.dfs.core.windows.net
    fs = AzureBlobFileSystem(
        account_name=account,
        account_key=remote.account_key,
        connection_string=remote.connection_string,
        skip_instance_cache=True,
        max_concurrency=4,
        blocksize=PART_SIZE,
    )
    container, prefix = split_container(remote.url)
    return fs, f"{container}/{prefix}".rstrip("/")


def _ssh(remote: RemoteConfig) -> tuple[Any, str]:
    from sshfs import SSHFileSystem

    parts = urlsplit(remote.url)
    if not parts.hostname:
        raise RemoteError(f"'{remote.url}' names no host", hint="use ssh://USER@HOST[:PORT]/PATH")
    # sshfs turns host key checking off unless told otherwise; ``()`` restores asyncssh's
    # default, ~/.ssh/known_hosts (or UserKnownHostsFile in ~/.ssh/config), as OpenSSH checks.
    options: dict[str, Any] = {"skip_instance_cache": True, "known_hosts": ()}
    if parts.port:
        options["port"] = parts.port
    if parts.username:
        options["username"] = parts.username
    # Host keys from ~/.ssh/known_hosts, keys from the agent and ~/.ssh/id_*, and ~/.ssh/config:
    # asyncssh's defaults, as OpenSSH's client.
    return SSHFileSystem(parts.hostname, **options), parts.path.rstrip("/") or "/"


def _http(remote: RemoteConfig) -> tuple[Any, str]:
    from fsspec.implementations.http import HTTPFileSystem

    return HTTPFileSystem(skip_instance_cache=True), remote.url.rstrip("/")


_OPENERS = {"gcs": _gcs, "azure": _azure, "ssh": _ssh, "http": _http}


class FsspecStore:
    """A remote's files under ``root`` in an fsspec file system."""

    def __init__(self, remote: RemoteConfig, jobs: int = 8) -> None:
        self.remote = remote
        self.kind = KINDS[remote.kind]
        where = f" at {remote.endpoint_url}" if remote.endpoint_url else ""
        self.description = f"remote '{remote.name}' ({remote.url}{where})"
        with self._errors("connect"):
            self.fs, self.root = filesystem(remote)

    def list_files(self) -> dict[str, int]:
        return {relpath: stored.size for relpath, stored in self.listing().items()}

    def listing(self) -> dict[str, StoredFile]:
        with self._errors("list"):
            self._check_root()
            try:
                found = self.fs.find(self._path("data"), detail=True)
            except FileNotFoundError:
                return {}
        files = {}
        for path, info in found.items():
            relpath = self._relative(path)
            if info.get("type") == "directory" or relpath.rpartition("/")[2].startswith("."):
                continue  # a directory marker, or an upload in progress
            files[relpath] = StoredFile(int(info.get("size") or 0), _modified(info))
        return files

    def upload(self, source: Path, relpath: str, advance: Advance) -> None:
        self._refuse_writes()
        target = self._path(relpath)
        with self._errors(f"upload {relpath}"), _progress(advance, source) as callback:
            if self.kind.atomic_put:
                self.fs.put_file(str(source), target, callback=callback)
                return
            folder, _, name = target.rpartition("/")
            temporary = f"{folder}/.{name}.{uuid.uuid4().hex}.part"
            self.fs.makedirs(folder, exist_ok=True)
            try:
                self.fs.put_file(str(source), temporary, callback=callback)
                self.fs.mv(temporary, target)
            except BaseException:
                with contextlib.suppress(Exception):
                    self.fs.rm_file(temporary)
                raise

    def download(self, relpath: str, landing: Landing, advance: Advance) -> str:
        with (
            self._errors(f"download {relpath}", missing=True),
            self.fs.open(self._path(relpath), "rb", block_size=self._block_size) as handle,
        ):

            def read_into(buffer: memoryview) -> int:
                data = handle.read(len(buffer))
                buffer[: len(data)] = data
                return len(data)

            return stream_into(landing, read_into, advance)

    @property
    def _block_size(self) -> int:
        # Over HTTP a stream (0): many static servers answer no range requests.
        return 0 if self.remote.kind == "http" else CHUNK

    def delete(self, relpath: str) -> None:
        self._refuse_writes()
        with self._errors(f"delete {relpath}"), contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(self._path(relpath))

    def probe(self) -> None:
        """One listing request; RemoteError when the remote cannot be listed."""
        with self._errors("list"):
            self._check_root()

    def _check_root(self) -> None:
        """A bucket or container that does not exist is an error, not an empty remote."""
        if self.remote.kind in ("gcs", "azure"):
            container = self.root.partition("/")[0]
            if not self.fs.exists(container):
                raise _NoContainer(container)

    def _refuse_writes(self) -> None:
        if self.kind.read_only:
            raise RemoteError(
                f"{self.description} is read-only ({self.kind.label}): mreg cannot write to it",
                hint="push to a writable remote (`mreg push -r NAME`); HTTP serves what it holds",
            )

    def _path(self, relpath: str) -> str:
        return f"{self.root}/{relpath}"

    def _relative(self, path: str) -> str:
        """``path`` as fsspec lists it, relative to the root (``data/...``)."""
        root = self.fs._strip_protocol(self.root).rstrip("/")
        stripped = self.fs._strip_protocol(path)
        if self.remote.kind == "http":
            root, stripped = self.root, path
        return stripped[len(root) :].lstrip("/")

    @contextlib.contextmanager
    def _errors(self, action: str, missing: bool = False) -> Iterator[None]:
        """Turn each library's exceptions into one RemoteError naming this remote."""
        try:
            yield
        except RemoteError:
            raise
        except _NoContainer as error:
            raise RemoteError(
                f"{self.description}: bucket or container '{error}' does not exist",
                hint="create it first, or check the URL",
            ) from None
        except FileNotFoundError:
            if missing:
                raise RemoteFileMissing(f"{self.description}: {action}: no such file") from None
            raise RemoteError(f"{self.description}: {action}: no such file or folder") from None
        except Exception as error:
            self._raise(action, error)

    def _raise(self, action: str, error: Exception) -> NoReturn:
        name = type(error).__name__
        text = one_line(error)
        if name == "HostKeyNotVerifiable":
            raise RemoteError(
                f"{self.description}: the server's host key does not match ~/.ssh/known_hosts "
                f"({text})",
                hint="if the server's key really changed, remove its old line from "
                "~/.ssh/known_hosts (`ssh-keygen -R HOST`), then connect once with ssh",
            ) from None
        if _is_credential_error(name, text) or getattr(error, "status_code", None) in (401, 403):
            raise RemoteError(
                f"{self.description} rejected the credentials ({name})",
                hint=_CREDENTIAL_HINTS[self.remote.kind],
            ) from None
        if isinstance(error, ConnectionError | TimeoutError) or name in _UNREACHABLE:
            raise RemoteError(f"{self.description} is unreachable: {text}") from None
        raise RemoteError(f"{self.description}: {action} failed: {name}: {text}") from None


class _NoContainer(Exception):
    pass


_UNREACHABLE = {"ClientConnectorError", "ServiceRequestError", "ConnectionLost", "gaierror"}
_CREDENTIAL_HINTS = {
    "gcs": "set GOOGLE_APPLICATION_CREDENTIALS, or `mreg remote modify NAME --credentials-file "
    "KEY.json` (kept in git-ignored .mreg/config.local.toml)",
    "azure": "set AZURE_STORAGE_CONNECTION_STRING (or AZURE_STORAGE_ACCOUNT_NAME and "
    "AZURE_STORAGE_ACCOUNT_KEY), or `mreg remote modify NAME --account-key KEY`",
    "ssh": "check your key (ssh-agent, ~/.ssh/id_*, IdentityFile in ~/.ssh/config) with "
    "`ssh USER@HOST`",
    "http": "check your access to the URL",
}


def _is_credential_error(name: str, text: str) -> bool:
    if name in ("PermissionDenied", "PermissionError", "ClientAuthenticationError"):
        return True
    return bool(
        re.search(
            r"AuthorizationFailure|AuthenticationFailed|failed to authenticate|"
            r"\b(401|403)\b|Forbidden",
            text,
        )
    )


def _modified(info: dict[str, Any]) -> float:
    """When the store last wrote a file, from whichever field its fsspec listing has."""
    for key in ("mtime", "last_modified", "updated", "LastModified"):
        value = info.get(key)
        if isinstance(value, datetime):
            return value.timestamp()
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str) and value:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    return 0.0


@contextlib.contextmanager
def _progress(advance: Advance, source: Path) -> Iterator[Any]:
    """An fsspec callback that forwards progress to ``advance``; whatever the library did not
    report is counted when the upload completes."""
    from fsspec.callbacks import Callback

    reported = [0]

    class Forward(Callback):
        def relative_update(self, inc: int = 1) -> None:
            reported[0] += inc
            advance(inc)

        def absolute_update(self, value: int) -> None:
            self.relative_update(value - reported[0])

    yield Forward()
    advance(max(0, source.stat().st_size - reported[0]))


def lance_location(remote: RemoteConfig) -> tuple[str, dict[str, str]]:
    """Where Lance's own object store reads ``remote`` in place, and its ``storage_options``:
    Azure (``az://``; account name and key from config.local.toml, AZURE_STORAGE_* or the
    connection string, whose BlobEndpoint becomes ``azure_endpoint``) and GCS (``gs://``; a
    service-account file as ``google_service_account``). SSH and HTTP: RemoteError."""
    container, prefix = split_container(remote.url)
    base = f"{container}/{prefix}".rstrip("/")
    if remote.kind == "azure":
        return f"az://{base}", _azure_options(remote)
    if remote.kind == "gcs":
        return f"gs://{base}", _gcs_options(remote)
    raise RemoteError(
        f"remote '{remote.name}' ({remote.url}) cannot be read in place: Lance reads S3, GCS, "
        "Azure and local remotes",
        hint="run `mreg fetch` from it, then open without --remote",
    )


def _azure_options(remote: RemoteConfig) -> dict[str, str]:
    text = remote.connection_string or os.environ.get("AZURE_STORAGE_CONNECTION_STRING", "")
    parts = dict(p.split("=", 1) for p in text.split(";") if "=" in p)
    account = (
        remote.account_name
        or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME")
        or parts.get("AccountName")
    )
    key = (
        remote.account_key or os.environ.get("AZURE_STORAGE_ACCOUNT_KEY") or parts.get("AccountKey")
    )
    endpoint = remote.endpoint_url or parts.get("BlobEndpoint")
    options = {"account_name": account or "", "account_key": key or ""}
    if endpoint:
        options["azure_endpoint"] = endpoint.rstrip("/")
        options["allow_http"] = str(endpoint.startswith("http://")).lower()
    return {k: v for k, v in options.items() if v}


def _gcs_options(remote: RemoteConfig) -> dict[str, str]:
    account = remote.credentials_file or os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if account:
        return {"google_service_account": account}
    if not remote.endpoint_url:
        return {}  # Lance's own default chain (the metadata server on Google Cloud)
    # An emulator: object_store takes its base URL from a service-account file's gcs_base_url.
    # One file per endpoint (no secret in it), rewritten in place, so opens do not pile up files.
    import hashlib
    import json
    import tempfile

    from mreg.atomic import atomic_write_text

    endpoint = remote.endpoint_url.rstrip("/")
    tag = hashlib.sha256(endpoint.encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / f"mreg-gcs-emulator-{tag}.json"
    emulator = {"gcs_base_url": endpoint, "disable_oauth": True, "client_email": "",
               "private_key": "", "private_key_id": ""}  # fmt: skip
    atomic_write_text(path, json.dumps(emulator))
    return {"google_service_account": str(path), "allow_http": "true"}
