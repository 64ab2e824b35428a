"""Manifests: the small TOML files git tracks, one beside each artifact (``PATH.mreg.toml``).

A manifest names every byte of an artifact's Lance data (path, size, sha256), the Lance fragments
that make up exactly this version, and metadata a reviewer can read in a diff. It is the only
thing that says what a version is: data are opened from it, never from "the latest" Lance version.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from mreg import toml_writer
from mreg.atomic import atomic_write_text
from mreg.converters.base import CHUNK_DTYPE, FILE_DTYPE, Restore
from mreg.errors import ManifestError, UsageError

FORMAT_VERSION = 1
SUFFIX = ".mreg.toml"
HEADER = "# mreg manifest: written by `mreg add`; review it in diffs, do not edit it by hand.\n"

Kind = Literal["model", "dataset"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_DATA_PATH = re.compile(r"^data/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")
# Where deletion files live among the data files (see ``Fragment.deletion_file``).
DELETIONS = "data/_deletions"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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


def manifest_path_for(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + SUFFIX)


def artifact_path_for(manifest: Path) -> Path:
    return manifest.with_name(manifest.name.removesuffix(SUFFIX))


def dumps(manifest: Manifest) -> str:
    """The manifest as deterministic TOML."""
    document: dict[str, Any] = {
        "format_version": manifest.format_version,
        "name": manifest.name,
        "kind": manifest.kind,
        "path": manifest.path,
        "rows": manifest.rows,
        "source": {
            "format": manifest.source.format,
            "size": manifest.source.size,
            "sha256": manifest.source.sha256,
            "restore": manifest.source.restore,
            "url": manifest.source.url or None,
            "companions": list(manifest.source.companions) or None,
            "restore_info": manifest.source.restore_info or None,
            "appended": manifest.source.appended or None,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.source.files
            ]
            or None,
        },
    }
    if manifest.meta:
        document["meta"] = dict(sorted(manifest.meta.items()))
    if manifest.info:
        document["info"] = dict(sorted(manifest.info.items()))
    if manifest.kind == "model":
        document["model"] = {
            "parameters": manifest.parameters,
            "dtypes": manifest.dtypes,
            "tensors": [
                {
                    "name": t.name,
                    "shape": list(t.shape),
                    "dtype": t.dtype,
                    "fragment": t.fragment,
                    "digest": t.digest,
                }
                for t in manifest.weights
            ],
            "files": [
                {"path": t.name, "fragment": t.fragment, "digest": t.digest}
                for t in manifest.side_files
            ]
            or None,
            "chunks": [
                {"path": t.name, "size": t.shape[0], "fragment": t.fragment, "digest": t.digest}
                for t in manifest.chunks
            ]
            or None,
        }
    else:
        document["dataset"] = {
            "columns": [{"name": c.name, "type": c.type} for c in manifest.columns]
        }
    document["lance"] = {
        "schema": manifest.schema,
        "fragments": [
            {"id": f.id, "rows": f.rows, "metadata": f.metadata} for f in manifest.fragments
        ],
        "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in manifest.files],
    }
    return HEADER + toml_writer.dumps(document)


def loads(text: str, origin: str) -> Manifest:
    """Parse and validate a manifest; ManifestError names ``origin`` on any problem."""
    try:
        doc = tomllib.loads(text)
        manifest = _from_document(doc)
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"manifest {origin} is malformed: {error}") from None
    _validate(manifest, origin)
    return manifest


def read(path: Path, origin: str | None = None) -> Manifest:
    return loads(path.read_text(encoding="utf-8"), origin or str(path))


def write(path: Path, manifest: Manifest) -> None:
    """Write ``manifest`` to ``path`` atomically (a killed earlier writer's temporary file is
    removed: see ``PendingFile``)."""
    atomic_write_text(path, dumps(manifest))


def _from_document(doc: dict[str, Any]) -> Manifest:
    source = doc["source"]
    lance = doc["lance"]
    model = doc.get("model", {})
    dataset = doc.get("dataset", {})
    return Manifest(
        format_version=int(doc["format_version"]),
        name=str(doc["name"]),
        kind=doc["kind"],
        path=str(doc["path"]),
        rows=int(doc["rows"]),
        source=Source(
            format=str(source["format"]),
            size=int(source["size"]),
            sha256=str(source["sha256"]),
            restore=source["restore"],
            restore_info=str(source.get("restore_info", "")),
            url=str(source.get("url", "")),
            companions=tuple(str(c) for c in source.get("companions", [])),
            appended=str(source.get("appended", "")),
            files=tuple(
                FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"]))
                for f in source.get("files", [])
            ),
        ),
        meta={str(k): str(v) for k, v in doc.get("meta", {}).items()},
        info={str(k): str(v) for k, v in doc.get("info", {}).items()},
        # Rows hold tensors first, then side files, then chunks, in this order.
        tensors=tuple(
            TensorInfo(t["name"], tuple(t["shape"]), t["dtype"], int(t["fragment"]), t["digest"])
            for t in model.get("tensors", [])
        )
        + tuple(
            TensorInfo(f["path"], (), FILE_DTYPE, int(f["fragment"]), f["digest"])
            for f in model.get("files", [])
        )
        + tuple(
            TensorInfo(c["path"], (int(c["size"]),), CHUNK_DTYPE, int(c["fragment"]), c["digest"])
            for c in model.get("chunks", [])
        ),
        columns=tuple(ColumnInfo(c["name"], c["type"]) for c in dataset.get("columns", [])),
        schema=str(lance["schema"]),
        fragments=tuple(
            Fragment(int(f["id"]), int(f["rows"]), str(f["metadata"])) for f in lance["fragments"]
        ),
        files=tuple(
            FileEntry(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in lance["files"]
        ),
    )


def _validate(manifest: Manifest, origin: str) -> None:
    if manifest.format_version > FORMAT_VERSION:
        raise ManifestError(
            f"manifest {origin} has format version {manifest.format_version}; "
            f"this mreg reads up to {FORMAT_VERSION}",
            hint="upgrade mreg",
        )
    if not valid_name(manifest.name):
        # The same rule as at add: a cloned manifest's name reaches terminals and git tags.
        raise ManifestError(
            f"manifest {origin} has an invalid artifact name {manifest.name!r}",
            hint="names are letters, digits, '.', '_' and '-'; fix the manifest or remove it",
        )
    if manifest.kind not in ("model", "dataset"):
        raise ManifestError(f"manifest {origin} has unknown kind {manifest.kind!r}")
    if manifest.source.restore not in ("exact", "equivalent"):
        raise ManifestError(f"manifest {origin} has unknown restore '{manifest.source.restore}'")
    if PurePosixPath(manifest.path).name != manifest.path or manifest.path in ("", ".", ".."):
        raise ManifestError(f"manifest {origin} points outside its folder: path '{manifest.path}'")
    for companion in manifest.source.companions:
        parts = PurePosixPath(companion).parts
        if not parts or companion.startswith("/") or ".." in parts or "\\" in companion:
            raise ManifestError(
                f"manifest {origin} points outside its folder: companion '{companion}'"
            )
    for side in manifest.side_files:
        parts = PurePosixPath(side.name).parts
        if not parts or side.name.startswith("/") or ".." in parts or "\\" in side.name:
            raise ManifestError(f"manifest {origin} points outside its folder: file '{side.name}'")
    for chunk in manifest.chunks:  # "": a chunk of the artifact's single file
        parts = PurePosixPath(chunk.name).parts
        if chunk.name.startswith("/") or ".." in parts or "\\" in chunk.name:
            raise ManifestError(f"manifest {origin} points outside its folder: file '{chunk.name}'")
        if chunk.shape[0] < 0:
            raise ManifestError(f"manifest {origin} has a malformed chunk of '{chunk.name}'")
    listed = set()
    for entry in manifest.files:
        if not _DATA_PATH.match(entry.path) or ".." in PurePosixPath(entry.path).parts:
            raise ManifestError(
                f"manifest {origin} points outside the repository: file '{entry.path}'"
            )
        if not _SHA256.match(entry.sha256) or entry.size < 0:
            raise ManifestError(f"manifest {origin} has a malformed entry for '{entry.path}'")
        listed.add(entry.path)
    for fragment in manifest.fragments:
        deletion = fragment.deletion_file()
        for path in fragment.data_files() + ([deletion] if deletion else []):
            if path not in listed:
                raise ManifestError(
                    f"manifest {origin}: fragment {fragment.id} uses '{path}', "
                    "which is not in its file list"
                )
