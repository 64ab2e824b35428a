"""What a manifest records, as frozen dataclasses: an artifact's name, source, tensors or
columns, Lance fragments and data files (``manifest`` writes and reads them as TOML)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace
from typing import Literal

from mreg.converters.base import CHUNK_DTYPE, FILE_DTYPE, Restore
from mreg.errors import UsageError

FORMAT_VERSION = 1

Kind = Literal["model", "dataset"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
# Where deletion files live among the data files (see ``Fragment.deletion_file``).
DELETIONS = "data/_deletions"


def valid_name(name: str) -> bool:
    """Whether ``name`` can be an artifact name (it becomes part of git tags: no @ # / spaces
    or control characters)."""
    return bool(_NAME.fullmatch(name)) and ".." not in name and not name.endswith((".", ".lock"))


def check_name(name: str) -> str:
    """``name`` if it can be an artifact name; UsageError otherwise."""
    if not valid_name(name):
        raise UsageError(
            f"'{name}' is not a valid artifact name",
            hint="use letters, digits, '.', '_' and '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class FileEntry:
    """One immutable Lance data file, relative to the dataset root (``data/...``)."""

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Fragment:
    """One Lance fragment; ``metadata`` is Lance's own FragmentMetadata JSON."""

    id: int
    rows: int
    metadata: str

    def data_files(self) -> list[str]:
        """Paths (``data/...``) of the Lance files of this fragment, sidecar blobs excluded."""
        return [f"data/{f['path']}" for f in json.loads(self.metadata)["files"]]

    def deletion_file(self) -> str | None:
        """Path (``data/_deletions/...``) of the Lance deletion file that hides some of this
        fragment's rows (a re-added table reusing it without them), or None.

        Lance looks for it at ``_deletions/`` beside ``data/``; mreg keeps it under ``data/``
        with the data files, so caches, remotes and gc treat it as one more data file.
        """
        deletion = json.loads(self.metadata).get("deletion_file")
        if not deletion:
            return None
        suffix = "arrow" if deletion["file_type"] == "array" else "bin"
        return f"{DELETIONS}/{self.id}-{deletion['read_version']}-{deletion['id']}.{suffix}"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    dtype: str
    fragment: int
    digest: str


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str


@dataclass(frozen=True)
class Source:
    """The file the user added, and how faithfully checkout gives it back."""

    format: str
    size: int
    sha256: str
    restore: Restore
    restore_info: str = ""
    url: str = ""
    # Files beside the artifact that belong to it (ONNX external data); see workspace_digest.
    companions: tuple[str, ...] = ()
    # sha256 of the last file appended (``--mode append``): appending it again adds nothing.
    appended: str = ""
    # A folder's files (path inside it, size, sha256), for `mreg diff`; () for a file, and for
    # versions added before mreg recorded them.
    files: tuple[FileEntry, ...] = ()


@dataclass(frozen=True)
class Manifest:
    name: str
    kind: Kind
    path: str
    source: Source
    rows: int
    schema: str
    fragments: tuple[Fragment, ...]
    files: tuple[FileEntry, ...]
    columns: tuple[ColumnInfo, ...] = ()
    tensors: tuple[TensorInfo, ...] = ()
    meta: dict[str, str] = field(default_factory=dict)
    info: dict[str, str] = field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def side_files(self) -> tuple[TensorInfo, ...]:
        """A model folder's small files (config.json, tokenizer...) kept beside its tensors."""
        return tuple(t for t in self.tensors if t.dtype == FILE_DTYPE)

    @property
    def chunks(self) -> tuple[TensorInfo, ...]:
        """Opaque content (``blob``, ``blob_dir``): content-defined chunks, named by their file."""
        return tuple(t for t in self.tensors if t.dtype == CHUNK_DTYPE)

    @property
    def weights(self) -> tuple[TensorInfo, ...]:
        return tuple(t for t in self.tensors if t.dtype not in (FILE_DTYPE, CHUNK_DTYPE))

    @property
    def parameters(self) -> int:
        total = 0
        for tensor in self.weights:
            count = 1
            for dim in tensor.shape:
                count *= dim
            total += count
        return total

    @property
    def dtypes(self) -> list[str]:
        return sorted({t.dtype for t in self.weights})

    @property
    def data_size(self) -> int:
        return sum(f.size for f in self.files)

    def files_of(self, fragment: Fragment) -> list[FileEntry]:
        """The data files of ``fragment``, its sidecar blob files included."""
        stems = [p.removesuffix(".lance") + "/" for p in fragment.data_files()]
        owned = {*fragment.data_files(), fragment.deletion_file()}
        return [f for f in self.files if f.path in owned or f.path.startswith(tuple(stems))]

    def with_meta(self, meta: dict[str, str]) -> Manifest:
        return replace(self, meta=dict(sorted({**self.meta, **meta}.items())))

    def content_key(self) -> str:
        """A digest of this version's data and restore recipe: equal keys give equal files."""
        from mreg.hashing import sha256_bytes

        parts = [self.source.format, self.source.restore_info, self.schema]
        parts += [f.metadata for f in self.fragments]
        return sha256_bytes("\n".join(parts).encode())[:32]
