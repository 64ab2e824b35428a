"""The messages of ``mreg.v1`` that the service builds from files, Arrow batches and the
registry's answers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from mreg.errors import UsageError
from mreg.protocol import codec
from mreg.repo import manifest as manifests

if TYPE_CHECKING:
    from mreg.protocol import mreg_pb2
    from mreg.server.operations import Download

CHUNK = 1 << 20


def file_chunks(found: Download, offset: int) -> Iterator[mreg_pb2.FileChunk]:
    """The file ``found`` from ``offset`` on, in chunks; the first tells the name, size and
    sha256."""
    from mreg.protocol import mreg_pb2

    name, size, digest = found.filename, found.size, found.sha256
    if offset > size:
        raise UsageError(f"offset {offset:,} is past the end of {name} ({size:,} bytes)")
    with open(found.path, "rb") as source:
        source.seek(offset)
        first = True
        while True:
            data = source.read(CHUNK)
            if not data and not first:
                return
            if first:
                yield mreg_pb2.FileChunk(
                    offset=offset, data=data, name=name, size=size, sha256=digest
                )
                first = False
            else:
                yield mreg_pb2.FileChunk(offset=offset, data=data)
            offset += len(data)


def ipc(batch: Any) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def artifact(target: Any) -> mreg_pb2.Artifact:
    from mreg.protocol import mreg_pb2

    m = target.manifest
    return mreg_pb2.Artifact(
        name=m.name,
        kind=m.kind,
        path=target.artifact_rel,
        rev=target.rev or "",
        manifest_toml=manifests.dumps(m),
    )


def entries(entries: list[Any]) -> mreg_pb2.EntryList:
    from mreg.protocol import mreg_pb2

    return mreg_pb2.EntryList(entries=[codec.entry_message(e) for e in entries])


def tags(tags: list[str]) -> mreg_pb2.TagList:
    from mreg.protocol import mreg_pb2

    return mreg_pb2.TagList(tags=tags)
