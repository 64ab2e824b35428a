"""A remote in S3-compatible object storage (AWS S3, MinIO, SeaweedFS), through boto3.

Objects become visible only when complete: single PUTs are atomic and multipart uploads appear
on CompleteMultipartUpload, so an interrupted push leaves nothing half-written behind a key.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace
from pathlib import Path
from typing import Any, NoReturn

import boto3
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from botocore.config import Config as BotoConfig

from mreg.config import RemoteConfig
from mreg.errors import RemoteError, RemoteFileMissing
from mreg.progress import Advance
from mreg.storage.base import StoredFile
from mreg.storage.landing import Landing, Turns, chunk_buffer, stream_into
from mreg.storage.transfer import run_parallel

PART_SIZE = 16 << 20
MULTIPART_THRESHOLD = 64 << 20
# Objects this large are fetched as parallel ranged GETs, one connection per part.
RANGED_DOWNLOAD_FROM = MULTIPART_THRESHOLD
DOWNLOAD_PART_SIZE = PART_SIZE

# Lance (object_store underneath, not boto3) retries for up to 180 s by default: reads that
# fail fast instead turn an endpoint that goes away mid-epoch into an error within seconds.
LANCE_TIMEOUTS = {
    "connect_timeout": "5s",
    "request_timeout": "60s",
    "client_max_retries": "3",
    "client_retry_timeout": "30",
}

_CREDENTIAL_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "InvalidToken",
    "ExpiredToken",
    "403",  # a HEAD response (download_file starts with one) has no body, only the status
}
_UNREACHABLE = (
    botocore.exceptions.EndpointConnectionError,
    botocore.exceptions.ConnectTimeoutError,
    botocore.exceptions.ReadTimeoutError,
    botocore.exceptions.ConnectionClosedError,
    botocore.exceptions.ProxyConnectionError,
)


def split_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``)."""
    rest = url.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise RemoteError(f"'{url}' names no bucket", hint="use s3://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    return bucket, prefix + "/" if prefix else ""


def _session(remote: RemoteConfig) -> boto3.session.Session:
    """A boto3 session with the remote's own credentials, else AWS variables and profiles."""
    return boto3.session.Session(
        profile_name=remote.profile,
        aws_access_key_id=remote.access_key_id,
        aws_secret_access_key=remote.secret_access_key,
        aws_session_token=remote.session_token,
        region_name=remote.region,
    )


def lance_storage_options(remote: RemoteConfig) -> dict[str, str]:
    """Lance ``storage_options`` that reach ``remote`` as S3Store does: the same endpoint,
    region and credentials (resolved once, here, by boto3: config.local.toml, AWS variables,
    profiles; with none found, Lance tries its own chain), and LANCE_TIMEOUTS.

    Temporary credentials (a profile's SSO or assumed role) are frozen at this call: a reader
    that outlives them needs new options.
    """
    session = _session(remote)
    options = {**LANCE_TIMEOUTS, "aws_region": session.region_name or "us-east-1"}
    credentials = session.get_credentials()
    if credentials is not None:
        frozen = credentials.get_frozen_credentials()
        options["aws_access_key_id"] = frozen.access_key
        options["aws_secret_access_key"] = frozen.secret_key
        if frozen.token:
            options["aws_session_token"] = frozen.token
    if remote.endpoint_url:
        options["aws_endpoint"] = remote.endpoint_url
        options["allow_http"] = str(remote.endpoint_url.startswith("http://")).lower()
    return options


def with_credentials(remote: RemoteConfig) -> RemoteConfig:
    """``remote`` with the region and credentials boto3 resolves for it here filled in (a
    profile's temporary ones frozen at this call); unchanged when none are found."""
    session = _session(remote)
    credentials = session.get_credentials()
    if credentials is None:
        return remote
    frozen = credentials.get_frozen_credentials()
    return replace(
        remote,
        profile=None,
        region=session.region_name or remote.region,
        access_key_id=frozen.access_key,
        secret_access_key=frozen.secret_key,
        session_token=frozen.token,
    )


def credentials_source(remote: RemoteConfig) -> str | None:
    """Where boto3 finds credentials for ``remote`` (``config.local.toml``, ``env``, a shared
    credentials file, ...), or None when it finds none."""
    if remote.access_key_id and remote.secret_access_key:
        return ".mreg/config.local.toml"
    try:
        credentials = _session(remote).get_credentials()
    except botocore.exceptions.BotoCoreError:  # a profile that does not exist
        return None
    return None if credentials is None else str(credentials.method)


def probe(remote: RemoteConfig, timeout: float) -> None:
    """List one object of ``remote``, with one try and ``timeout`` seconds to connect and to
    read; RemoteError (unreachable, credentials refused, no bucket) if that fails."""
    store = S3Store(remote, jobs=1)
    store.client = _session(remote).client(
        "s3",
        endpoint_url=remote.endpoint_url,
        config=BotoConfig(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"} if remote.endpoint_url else None,
        ),
    )
    with store._errors("list"):
        store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix, MaxKeys=1)


class S3Store:
    def __init__(self, remote: RemoteConfig, jobs: int = 8) -> None:
        self.remote = remote
        self.jobs = jobs
        self._parts = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mreg-part")
        self.bucket, self.prefix = split_url(remote.url)
        where = f" at {remote.endpoint_url}" if remote.endpoint_url else ""
        self.description = f"remote '{remote.name}' ({remote.url}{where})"
        session = _session(remote)
        self.client = session.client(
            "s3",
            endpoint_url=remote.endpoint_url,
            config=BotoConfig(
                max_pool_connections=max(16, jobs * 4),
                connect_timeout=5,
                read_timeout=60,
                retries={"max_attempts": 3, "mode": "standard"},
                s3={"addressing_style": "path"} if remote.endpoint_url else None,
            ),
        )
        self.transfer_config = TransferConfig(
            multipart_threshold=MULTIPART_THRESHOLD,
            multipart_chunksize=PART_SIZE,
            max_concurrency=8,
            use_threads=True,
        )

    def list_files(self) -> dict[str, int]:
        return {relpath: stored.size for relpath, stored in self.listing().items()}

    def listing(self) -> dict[str, StoredFile]:
        files = {}
        with self._errors("list"):
            paginator = self.client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix + "data/"):
                for item in page.get("Contents", []):
                    modified = item["LastModified"].timestamp()
                    files[item["Key"][len(self.prefix) :]] = StoredFile(int(item["Size"]), modified)
        return files

    def upload(self, source: Path, relpath: str, advance: Advance) -> None:
        with self._errors(f"upload {relpath}"):
            self.client.upload_file(
                str(source),
                self.bucket,
                self.prefix + relpath,
                Config=self.transfer_config,
                Callback=advance,
            )

    def download(self, relpath: str, landing: Landing, advance: Advance) -> str:
        with self._errors(f"download {relpath}"):
            if landing.size < RANGED_DOWNLOAD_FROM:
                # Small objects: one GET, hashed as it streams (no HEAD, no second read).
                response = self.client.get_object(Bucket=self.bucket, Key=self.prefix + relpath)
                return stream_into(landing, response["Body"].readinto, advance)
            return self._download_in_parts(self.prefix + relpath, landing, advance)

    def _download_in_parts(self, key: str, landing: Landing, advance: Advance) -> str:
        """Ranged GETs in parallel, each written to its place as it lands; each part is then
        hashed in its turn from the memory it arrived in.

        Parts of every large file share one pool of ``jobs`` threads, so a fetch holds at most
        ``jobs`` part buffers (and connections) however many large files it downloads at once.
        The pool takes parts first in, first out and each file submits its parts in order, so
        the part a waiting one needs is always running or done: nothing deadlocks.
        """
        size = landing.size
        step = DOWNLOAD_PART_SIZE
        parts = [(start, min(step, size - start)) for start in range(0, size, step)]
        digest = hashlib.sha256()
        turn = Turns()

        def get(index: int) -> None:
            start, length = parts[index]
            buffer = self._get_part(key, start, length, advance)
            landing.write(start, buffer, length)
            with turn.of(index):
                digest.update(buffer[:length])

        futures = [self._parts.submit(get, index) for index in range(len(parts))]
        try:
            for future in futures:
                future.result()
        finally:
            turn.cancel()
            for future in futures:
                future.cancel()
            wait(futures)  # none may write into the landing once the caller closes it
        return digest.hexdigest()

    def _get_part(self, key: str, start: int, length: int, advance: Advance) -> memoryview:
        """Bytes ``start`` to ``start + length`` of ``key``, in this thread's part buffer."""
        last = start + length - 1
        response = self.client.get_object(
            Bucket=self.bucket, Key=key, Range=f"bytes={start}-{last}"
        )
        body = response["Body"]
        buffer = chunk_buffer(DOWNLOAD_PART_SIZE)
        filled = 0
        while filled < length and (count := body.readinto(buffer[filled:length])):
            filled += count
            advance(count)
        if filled != length:
            raise RemoteError(
                f"{self.description}: {key} ended after {start + filled} of {last + 1} bytes"
            )
        return buffer

    def delete(self, relpath: str) -> None:
        with self._errors(f"delete {relpath}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.prefix + relpath)

    @contextlib.contextmanager
    def _errors(self, action: str) -> Iterator[None]:
        """Turn boto's many exception types into one RemoteError naming this remote."""
        try:
            yield
        except botocore.exceptions.NoCredentialsError:
            raise RemoteError(
                f"{self.description}: no credentials",
                hint="set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, an AWS profile, "
                "or `mreg remote add ... --access-key-id ... --secret-access-key ...`",
            ) from None
        except _UNREACHABLE as error:
            raise RemoteError(f"{self.description} is unreachable: {error}") from None
        except botocore.exceptions.ClientError as error:
            self._raise_client_error(action, error.response)
        except boto3.exceptions.S3UploadFailedError as error:
            raise RemoteError(f"{self.description}: {action} failed: {error}") from None
        except botocore.exceptions.BotoCoreError as error:
            raise RemoteError(f"{self.description}: {action} failed: {error}") from None

    def _bucket_exists(self) -> bool:
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except botocore.exceptions.ClientError as error:
            code = str(error.response.get("Error", {}).get("Code", ""))
            return code not in ("404", "NoSuchBucket", "NotFound")
        except botocore.exceptions.BotoCoreError:
            return True
        return True

    def _raise_client_error(self, action: str, response: dict[str, Any]) -> NoReturn:
        code = str(response.get("Error", {}).get("Code", ""))
        if code in _CREDENTIAL_CODES:
            raise RemoteError(
                f"{self.description} rejected the credentials ({code})",
                hint="check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or .mreg/config.local.toml",
            ) from None
        if code == "NoSuchBucket":
            raise RemoteError(
                f"{self.description}: bucket '{self.bucket}' does not exist",
                hint="create the bucket first",
            ) from None
        if code in ("404", "NoSuchKey", "NotFound"):
            if not self._bucket_exists():
                self._raise_client_error(action, {"Error": {"Code": "NoSuchBucket"}})
            raise RemoteFileMissing(f"{self.description}: {action}: no such object") from None
        message = response.get("Error", {}).get("Message", "")
        raise RemoteError(
            f"{self.description}: {action} failed: {code} {message}".strip()
        ) from None


def list_objects(remote: RemoteConfig) -> dict[str, int]:
    """Every object under ``remote``'s prefix (a source of data, not a remote's ``data/``), by
    key relative to the prefix, with its size; folder markers (keys ending in ``/``) left out."""
    store = S3Store(remote, jobs=1)
    objects = {}
    with store._errors("list"):
        pages = store.client.get_paginator("list_objects_v2").paginate(
            Bucket=store.bucket, Prefix=store.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                if not item["Key"].endswith("/"):
                    objects[item["Key"][len(store.prefix) :]] = int(item["Size"])
    return objects


def download_objects(remote: RemoteConfig, relpaths: list[str], folder: Path, jobs: int) -> None:
    """The objects ``relpaths`` (keys relative to ``remote``'s prefix) into ``folder``, each at
    its relative path, ``jobs`` at once."""
    store = S3Store(remote, jobs=jobs)

    def fetch(relpath: str, advance: Advance) -> None:
        target = folder / relpath
        target.parent.mkdir(parents=True, exist_ok=True)
        with store._errors(f"download {relpath}"):
            store.client.download_file(
                store.bucket, store.prefix + relpath, str(target), Config=store.transfer_config
            )

    run_parallel(relpaths, fetch, f"download from {remote.url}", 0, jobs)
