"""Receiving an upload: a multipart body streamed into a folder of ``.mreg/tmp``, never into
memory or the system's temporary folder, with a size limit counted as the bytes arrive.

File parts land under their file name (a relative path builds a folder: ``bert/config.json``);
a single ``.tar`` part is unpacked with tarfile's ``data`` filter (no links leaving it, no
absolute paths, no devices). Other parts are small form fields (JSON metadata, a version).
Whoever opened the folder removes it, whatever happens (see ``Cache.staging``).
"""

from __future__ import annotations

import tarfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from mreg.errors import UsageError
from mreg.server.operations import BadName
from mreg.server.upload import UploadTooLarge

MAX_FIELD = 64 * 1024
DEFAULT_LIMIT = 20 * 1024**3  # bytes; MREG_SERVER_MAX_UPLOAD overrides


@dataclass
class Upload:
    """What a multipart body held: the files written under ``folder`` and the form fields."""

    folder: Path
    files: list[str] = field(default_factory=list)
    fields: dict[str, str] = field(default_factory=dict)

    def model_path(self) -> Path:
        """The path to register: the one file, the unpacked archive, or the folder of files."""
        if not self.files:
            raise UsageError("the upload holds no file", hint="send the weights as a 'file' part")
        if len(self.files) == 1 and "/" not in self.files[0]:
            single = self.folder / self.files[0]
            if single.suffix == ".tar":
                return _unpack(single)
            return single
        tops = {PurePosixPath(f).parts[0] for f in self.files}
        return self.folder / tops.pop() if len(tops) == 1 else self.folder


def safe_relative(name: str) -> str:
    """A file name of an upload: relative, no ``..``, no backslash or control character."""
    path = PurePosixPath(name)
    bad = not name or path.is_absolute() or "\\" in name or any(ord(c) < 32 for c in name)
    if bad or any(part in ("..", ".", "") for part in name.split("/")) or len(name) > 500:
        raise BadName(f"not a valid file name in an upload: {name[:200]!r}")
    return path.as_posix()


async def receive(
    chunks: AsyncIterator[bytes], content_type: str, folder: Path, limit: int
) -> Upload:
    """Parse the multipart body from ``chunks`` into ``folder``; UploadTooLarge past ``limit``."""
    from python_multipart.multipart import MultipartParser, parse_options_header

    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise UsageError("expected a multipart/form-data body with a boundary")
    upload = Upload(folder)
    part = _Part(upload)
    callbacks: Any = {
        "on_part_begin": part.begin,
        "on_header_field": part.header_field,
        "on_header_value": part.header_value,
        "on_header_end": part.header_end,
        "on_headers_finished": part.headers_finished,
        "on_part_data": part.data,
        "on_part_end": part.end,
    }
    parser = MultipartParser(boundary, callbacks)
    received = 0
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > limit:
                raise UploadTooLarge(
                    f"the upload is larger than this server's limit of {limit:,} bytes",
                    hint="the server's MREG_SERVER_MAX_UPLOAD sets the limit",
                )
            parser.write(chunk)
        parser.finalize()
    finally:
        part.close()
    return upload


class _Part:
    """The multipart part being read: its headers, then its bytes to a file or a field."""

    def __init__(self, upload: Upload) -> None:
        self.upload = upload
        self.out: IO[bytes] | None = None
        self.value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self._field = b""
        self._header = b""
        self.name = ""

    def begin(self) -> None:
        self.headers, self.value, self.out, self.name = {}, bytearray(), None, ""

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def header_end(self) -> None:
        self.headers[self._field.lower()] = self._header
        self._field = self._header = b""

    def headers_finished(self) -> None:
        from python_multipart.multipart import parse_options_header

        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            return
        rel = safe_relative(filename.decode("utf-8", "replace"))
        if rel in self.upload.files:
            raise UsageError(f"the upload holds {rel!r} twice")
        path = self.upload.folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        self.out = open(path, "xb")  # noqa: SIM115  (closed by end() or close())
        self.upload.files.append(rel)

    def data(self, data: bytes, start: int, end: int) -> None:
        if self.out is not None:
            self.out.write(data[start:end])
            return
        self.value += data[start:end]
        if len(self.value) > MAX_FIELD:
            raise UploadTooLarge(f"form field {self.name!r} is over {MAX_FIELD:,} bytes")

    def end(self) -> None:
        if self.out is not None:
            self.out.close()
            self.out = None
        elif self.name:
            self.upload.fields[self.name] = self.value.decode("utf-8", "replace")

    def close(self) -> None:
        if self.out is not None:
            self.out.close()


def _unpack(archive: Path) -> Path:
    """A ``.tar`` upload unpacked beside it with the ``data`` filter; the folder it holds."""
    target = archive.parent / "unpacked"
    try:
        with tarfile.open(archive) as tar:
            tar.extractall(target, filter="data")
    except (tarfile.TarError, OSError) as error:
        raise UsageError(f"cannot unpack {archive.name}: {error}") from None
    archive.unlink()
    entries = list(target.iterdir())
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else target
