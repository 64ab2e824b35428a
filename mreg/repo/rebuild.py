"""An artifact rebuilt in its original format from the cache, into a file object or a folder,
and checked against the digest its manifest records: what a checkout swaps in and a server hands
out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from mreg import converters
from mreg.converters.base import DatasetConverter, ModelConverter
from mreg.converters.base import Target as BaseTarget
from mreg.errors import IntegrityError
from mreg.hashing import HashingWriter, sha256_tree
from mreg.repo import tensor_reader

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.repo.work_tree import WorkTree


def write_copy(repo: WorkTree, manifest: Manifest, target: Path) -> str:
    """Rebuild the artifact of ``manifest`` from the cache at ``target`` (a new file or folder
    outside the work tree: what a server hands out), checked as a checkout checks it; returns
    its sha256 (of the file, or ``sha256_tree`` of the folder)."""
    converter = converters.get(manifest.source.format)
    assembled = manifest.source.restore == "exact" and converter.assembled_exactly
    write = writer(repo, manifest, converter, assembled, {})
    if converter.directory:
        target.mkdir()
        write(target)
        digest = manifest.source.sha256 if assembled else sha256_tree(target)
    else:
        with open(target, "w+b") as raw:
            digest = write_file(raw, write, manifest, assembled)
    check_exact(manifest.name, manifest, digest)
    return digest


def write_file(
    raw: BinaryIO, write: Callable[[BaseTarget], None], manifest: Manifest, assembled: bool
) -> str:
    """Write the artifact into ``raw``; returns its sha256 (hashed on the way unless the
    restore is assembled from checked bytes, whose digest is the recorded one)."""
    if assembled:
        write(raw)
        return manifest.source.sha256
    hashing = HashingWriter(raw)
    write(cast(BinaryIO, hashing))
    return hashing.hexdigest()


def writer(
    repo: WorkTree,
    manifest: Manifest,
    converter: converters.Converter,
    assembled: bool,
    placed: Mapping[int, int],
) -> Callable[[BaseTarget], None]:
    """A function that writes the artifact of ``manifest`` into a file object or folder."""
    if manifest.kind == "dataset":
        reader = repo.cache.open(manifest).scanner(scan_in_order=True).to_reader()
        return lambda target: cast(DatasetConverter, converter).write(reader, target)
    # When the whole output is hashed and compared, checking every tensor's digest on the way
    # would only hash the same bytes twice. Otherwise every tensor is checked against its
    # digest, except those in files this process hashed already (downloaded by this pull);
    # a mismatch makes ``finish`` find the corrupt file and take it out of the cache.
    hashed_whole = manifest.source.restore == "exact" and not assembled
    checked = {e.sha256 for e in manifest.files if repo.cache.is_checked(e)}
    tensors = tensor_reader.read_stored_tensors(
        manifest,
        repo.cache.root,
        lambda: repo.cache.open(manifest, check=False),
        check_digests=not hashed_whole,
        checked_files=checked,
        placed=placed,
    )
    info = manifest.source.restore_info
    return lambda target: cast(ModelConverter, converter).write(tensors, info, target)


def check_exact(artifact_rel: str, manifest: Manifest, digest: str) -> None:
    if manifest.source.restore == "exact" and digest != manifest.source.sha256:
        raise IntegrityError(
            f"{artifact_rel}: restored data have sha256 {digest[:12]}…, "
            f"the manifest records {manifest.source.sha256[:12]}…",
            hint="run `mreg verify` to find the corrupt data",
        )
