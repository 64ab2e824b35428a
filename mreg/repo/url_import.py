"""``mreg import http(s)://...``: download a file into ``.mreg/tmp/`` with retries, then add it.

A transfer that breaks off is resumed with an HTTP Range request (``If-Range`` guards against a
file that changed meanwhile). The file lands at PATH in one rename (see ``placement``).
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from mreg import converters
from mreg.errors import IntegrityError, UsageError
from mreg.hashing import sha256_bytes, sha256_file
from mreg.repo.placement import add_placed, check_replaceable
from mreg.storage.http import discard, download

if TYPE_CHECKING:
    from mreg.repo.add_options import AddResult
    from mreg.repo.import_options import ImportOptions
    from mreg.repo.work_tree import WorkTree

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def import_url(
    repo: WorkTree, url: str, options: ImportOptions, sha256: str | None = None
) -> AddResult:
    """Download ``url`` to ``options.path`` (default: its file name here) and add it.

    With ``sha256``, a download with other bytes is refused and deleted. An interrupted download
    leaves a partial file in ``.mreg/tmp/`` that the same command resumes.
    """
    expected = _check_sha256(sha256)
    target = _file_target(repo, url, options.path)
    actual = converters.detect(target).kind
    if options.kind is not None and options.kind != actual:
        raise UsageError(f"{target.name} would be a {actual}, not a {options.kind}")
    part = repo.cache.tmp / f"import-{sha256_bytes(url.encode())[:16]}.part"
    download(url, part)
    digest = sha256_file(part)
    try:
        if expected and digest != expected:
            raise IntegrityError(
                f"{url}: the download has sha256 {digest}, --sha256 says {expected}; "
                "nothing was added"
            )
        check_replaceable(repo, target, digest, url, options.force)
        return add_placed(repo, part, target, options.adding(url))
    finally:
        discard(part)


def _file_target(repo: WorkTree, url: str, path: str | Path | None) -> Path:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(
            f"cannot import '{url}'",
            hint="use an http(s):// URL, hf://ORG/NAME[@REV] or hf-dataset://NAME",
        )
    file_name = PurePosixPath(unquote(parts.path)).name
    if path is None or Path(path).is_dir() or str(path).endswith("/"):
        if file_name in ("", ".", ".."):
            raise UsageError(f"{url} does not end in a file name", hint="pass PATH")
        path = Path(path or ".") / file_name
    target = repo.path_in_work_tree(path)
    if target.is_dir():
        raise UsageError(f"{path} is a folder; an http(s) import is one file")
    return target


def _check_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not _SHA256.match(value):
        raise UsageError(f"--sha256 expects 64 hex digits, got '{sha256}'")
    return value
