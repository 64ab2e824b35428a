"""An upload on its way in: the files it announces checked before a byte is read (safe relative
names, the server's size limit), then its bytes written under a temporary folder, checked
against what was announced. Transport-neutral: the bytes come as an iterator of chunks."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from mreg.errors import MregError, UsageError, one_line

# register_model's own parameters: an upload's metadata cannot set them (as `mreg register`).
REGISTER_ARGUMENTS = frozenset(
    {"name", "model", "model_format", "model_type", "version", "tokenizer"}
)


class UploadTooLarge(MregError):
    """An upload over the server's size limit (gRPC RESOURCE_EXHAUSTED, HTTP 413)."""


def check_files(
    files: Iterable[tuple[str, int]], folder: bool, max_bytes: int
) -> list[tuple[str, int]]:
    """``(relative path, size)`` of each announced file, normalized; UsageError for a name
    that is absolute, climbs out (``..``) or is not one plain file name outside a folder,
    UploadTooLarge when they add up to more than ``max_bytes``."""
    checked = []
    for name, size in files:
        parts = PurePosixPath(name).parts
        unsafe = not parts or name.startswith("/") or "\\" in name or "\0" in name
        if unsafe or any(p in ("..", ".") for p in parts) or (not folder and len(parts) > 1):
            raise UsageError(f"{name!r} is not a safe relative file name")
        checked.append(("/".join(parts), size))
    if not checked:
        raise UsageError("an upload names at least one file")
    if not folder and len(checked) > 1:
        raise UsageError("several files make a model folder: say so in the upload's header")
    total = sum(size for _, size in checked)
    if total > max_bytes:
        raise UploadTooLarge(
            f"the upload has {total:,} bytes; this server takes at most {max_bytes:,}",
            hint="ask the server's operator for a larger limit",
        )
    return checked


def metadata(text: str) -> dict[str, Any]:
    """An upload's metadata: a JSON object of ``register_model`` keyword arguments, none of
    them one of its own parameters (name, format, version...)."""
    try:
        fields = json.loads(text) if text else {}
    except ValueError as error:
        raise UsageError(f"the upload's metadata is not JSON: {one_line(error)}") from None
    if not isinstance(fields, dict):
        raise UsageError("the upload's metadata must be a JSON object")
    taken = sorted(fields.keys() & REGISTER_ARGUMENTS)
    if taken:
        raise UsageError(f"{taken[0]!r} is an argument of register, not metadata")
    return fields


def receive(chunks: Iterable[bytes], files: list[tuple[str, int]], folder: Path) -> None:
    """Write ``chunks`` into ``files`` under ``folder``, one after the other; UsageError when
    the stream ends before every announced byte, UploadTooLarge when it sends more."""
    stream = _nonempty(chunks)
    left = memoryview(b"")
    for name, size in files:
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as out:
            remaining = size
            while remaining:
                if not left:
                    nxt = next(stream, None)
                    if nxt is None:
                        raise UsageError("the upload ended before all the bytes it announced")
                    left = nxt
                piece = left[:remaining]
                out.write(piece)
                remaining -= len(piece)
                left = left[len(piece) :]
    if left or next(stream, None) is not None:
        raise UploadTooLarge("the upload sent more bytes than it announced")


def _nonempty(chunks: Iterable[bytes]) -> Iterator[memoryview]:
    for chunk in chunks:
        if chunk:
            yield memoryview(chunk)
