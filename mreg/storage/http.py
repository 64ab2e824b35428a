"""Resumable downloads of one file over http(s), for ``mreg import``.

A transfer that breaks off leaves its bytes in the partial file; the next attempt (or the next
run of the command) asks for the rest with ``Range: bytes=N-``. ``If-Range`` carries the ETag
(or Last-Modified) of the first response, so a file that changed on the server meanwhile comes
back whole (200) instead of being spliced; a server that ignores ranges is read from the start.
"""

from __future__ import annotations

import http.client
import re
import time
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from mreg.errors import RemoteError, one_line
from mreg.progress import bar

RETRIES = 5
BACKOFF_S = 0.5
TIMEOUT_S = 30.0
CHUNK = 1 << 20


def download(url: str, part: Path) -> None:
    """Fetch ``url`` into ``part``, continuing from what ``part`` holds; RemoteError at the end.

    4xx answers fail at once; dropped connections, timeouts and 5xx are tried ``RETRIES`` times.
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    problem = ""
    for attempt in range(RETRIES):
        before = _size(part)
        try:
            _transfer(url, part)
            return
        except _Retry as error:
            problem = str(error)
        if _size(part) <= before:
            # Only a try that got nowhere waits: a dropped transfer that made progress resumes.
            time.sleep(BACKOFF_S * 2**attempt)
    kept = f"; {_size(part):,} bytes are kept to resume" if _size(part) else ""
    raise RemoteError(
        f"could not download {url} after {RETRIES} attempts: {problem}{kept}",
        hint="check the network, then run the same command again",
    )


def discard(part: Path) -> None:
    """Remove a partial download and what it remembers about the server's file."""
    part.unlink(missing_ok=True)
    _validator_path(part).unlink(missing_ok=True)


class _Retry(Exception):
    """A failure another attempt may get past: a dropped connection, a timeout, a 5xx."""


def _transfer(url: str, part: Path) -> None:
    offset = _size(part)
    validator = _validator_path(part)
    headers = {"User-Agent": "mreg"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
        if validator.exists():
            headers["If-Range"] = validator.read_text()
    try:
        response = urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S
        )
    except urllib.error.HTTPError as error:
        _refused(url, error, part)
        return
    except (OSError, http.client.HTTPException) as error:
        raise _Retry(_reason(error)) from None
    with response:
        offset = _start(response, offset)
        if offset == 0:
            _remember_validator(validator, response.headers)
        length = response.headers.get("Content-Length", "")
        total = offset + int(length) if length.isdigit() else None
        name = PurePosixPath(urlsplit(url).path).name
        with (
            open(part, "ab" if offset else "wb") as out,
            bar(f"download {name}", total or 0) as advance,
        ):
            advance(offset)
            try:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    advance(len(chunk))
            except (OSError, http.client.HTTPException) as error:
                raise _Retry(_reason(error)) from None
    if total is not None and _size(part) != total:
        raise _Retry(f"the connection closed after {_size(part):,} of {total:,} bytes")


def _start(response: http.client.HTTPResponse, offset: int) -> int:
    """Where the body starts in the file: ``offset`` for a matching 206, else 0 (a restart)."""
    if response.status != 206:
        return 0
    match = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
    if match is None or int(match.group(1)) != offset:
        raise _Retry("the server answered the range request with another range")
    return offset


def _refused(url: str, error: urllib.error.HTTPError, part: Path) -> None:
    """Turn an HTTP error status into a retry, a finished download, or a RemoteError."""
    error.close()
    if error.code == 416:
        total = re.match(r"bytes \*/(\d+)", error.headers.get("Content-Range", ""))
        if total and int(total.group(1)) == _size(part):
            return  # the partial file was complete already
        discard(part)
        raise _Retry("the partial download no longer fits the file; starting over")
    if error.code in (408, 425, 429) or error.code >= 500:
        raise _Retry(f"HTTP {error.code} {error.reason}")
    hint = "check the URL" if error.code == 404 else "check the URL and your access to it"
    raise RemoteError(f"{url}: HTTP {error.code} {error.reason}", hint=hint)


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.URLError):
        reason = error.reason
        return reason if isinstance(reason, str) else one_line(reason)
    return f"{type(error).__name__}: {one_line(error)}"


def _remember_validator(validator: Path, headers: http.client.HTTPMessage) -> None:
    etag = headers.get("ETag", "")
    # If-Range takes a strong ETag or a date; a weak ETag cannot vouch for the bytes.
    value = etag if etag and not etag.startswith("W/") else headers.get("Last-Modified", "")
    if value:
        validator.write_text(value)
    else:
        validator.unlink(missing_ok=True)


def _validator_path(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
