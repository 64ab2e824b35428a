"""Manifests: the small TOML files git tracks, one beside each artifact (``PATH.mreg.toml``).

A manifest names every byte of an artifact's Lance data (path, size, sha256), the Lance fragments
that make up exactly this version, and metadata a reviewer can read in a diff. It is the only
thing that says what a version is: data are opened from it, never from "the latest" Lance version.
This module is its TOML form; ``manifest_data`` its data classes, which mreg imports from here too.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

from mreg import toml_writer
from mreg.atomic import atomic_write_text
from mreg.converters.base import CHUNK_DTYPE, FILE_DTYPE, Restore
from mreg.errors import ManifestError
from mreg.repo.manifest_data import (
    DELETIONS,
    FORMAT_VERSION,
    ColumnInfo,
    FileEntry,
    Fragment,
    Kind,
    Manifest,
    Source,
    TensorInfo,
    check_name,
    valid_name,
)

__all__ = [
    "DELETIONS",
    "FORMAT_VERSION",
    "SUFFIX",
    "ColumnInfo",
    "FileEntry",
    "Fragment",
    "Kind",
    "Manifest",
    "Restore",
    "Source",
    "TensorInfo",
    "artifact_path_for",
    "check_name",
    "dumps",
    "loads",
    "manifest_path_for",
    "read",
    "valid_name",
    "write",
]

SUFFIX = ".mreg.toml"
HEADER = "# mreg manifest: written by `mreg add`; review it in diffs, do not edit it by hand.\n"

_DATA_PATH = re.compile(r"^data/[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


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
