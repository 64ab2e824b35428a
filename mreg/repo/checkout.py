"""``mreg checkout``: give artifacts back in their original format from the cache."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from mreg import converters
from mreg.atomic import atomic_output, atomic_write_bytes
from mreg.converters.base import DatasetConverter, ModelConverter
from mreg.converters.base import Target as BaseTarget
from mreg.errors import IntegrityError, MissingData
from mreg.hashing import HashingWriter, sha256_tree
from mreg.repo import manifest as manifests
from mreg.repo import tensor_table
from mreg.repo.git import ignore_in_git
from mreg.repo.manifest import Manifest

if TYPE_CHECKING:
    from mreg.repo import Repo, Target


def restore(repo: Repo, manifest_rel: str, manifest: Manifest, force: bool = False) -> Path:
    """Write the artifact of ``manifest`` into the work tree unless it is already in sync."""
    artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
    target = repo.root / artifact_rel
    if not force and repo.workspace_in_sync(artifact_rel, manifest):
        return target
    converter = converters.get(manifest.source.format)
    # An exact model restore assembled from checked bytes is the original by construction;
    # anything else is hashed as it is written and compared with what the manifest records.
    assembled = manifest.source.restore == "exact" and converter.assembled_exactly
    write = _writer(repo, manifest, converter, assembled)
    if converter.directory:
        digest = _restore_folder(repo, target, manifest, write, assembled)
    else:
        with atomic_output(target, durable=False) as raw:
            digest = _write_file(raw, write, manifest, assembled)
            # Raised inside atomic_output: the work-tree file is left as it was.
            _check_exact(artifact_rel, manifest, digest)
    # Remembered with the file's (or folder's) fingerprint: `mreg status` need not hash it again.
    with repo.state.batch():
        repo.state.remember_sha256(artifact_rel, digest)
        repo.state.remember_restored(artifact_rel, manifest.content_key(), digest)
    return target


def _write_file(
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


def _writer(
    repo: Repo, manifest: Manifest, converter: converters.Converter, assembled: bool
) -> Callable[[BaseTarget], None]:
    """A function that writes the artifact of ``manifest`` into a file object or folder."""
    if manifest.kind == "dataset":
        reader = repo.cache.open(manifest).scanner(scan_in_order=True).to_reader()
        return lambda target: cast(DatasetConverter, converter).write(reader, target)
    # When the whole output is hashed and compared, checking every tensor's digest on the way
    # would only hash the same bytes twice.
    hashed_whole = manifest.source.restore == "exact" and not assembled
    checked = {e.sha256 for e in manifest.files if repo.cache.is_checked(e)}
    tensors = tensor_table.read_stored_tensors(
        manifest,
        repo.cache.root,
        lambda: repo.cache.open(manifest),
        check_digests=not hashed_whole,
        checked_files=checked,
    )
    info = manifest.source.restore_info
    return lambda target: cast(ModelConverter, converter).write(tensors, info, target)


def _restore_folder(
    repo: Repo,
    target: Path,
    manifest: Manifest,
    write: Callable[[BaseTarget], None],
    assembled: bool,
) -> str:
    """Build the folder beside the cache, check it, then swap it in for the old one."""
    with repo.cache.staging() as stage:
        built = stage / "new"
        built.mkdir()
        write(built)
        digest = manifest.source.sha256 if assembled else sha256_tree(built)
        _check_exact(repo.relpath(target), manifest, digest)
        if target.exists() or target.is_symlink():
            os.rename(target, stage / "old")
        target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(built, target)
    return digest


def _check_exact(artifact_rel: str, manifest: Manifest, digest: str) -> None:
    if manifest.source.restore == "exact" and digest != manifest.source.sha256:
        raise IntegrityError(
            f"{artifact_rel}: restored data have sha256 {digest[:12]}…, "
            f"the manifest records {manifest.source.sha256[:12]}…",
            hint="run `mreg verify` to find the corrupt data",
        )


def checkout(repo: Repo, specs: list[str] | None, force: bool = False) -> list[Target]:
    """Restore the named artifacts (all when none is named); ``NAME@REV`` rolls one back.

    Every target is checked for missing data before anything is written, so a checkout that
    cannot complete changes nothing.
    """
    targets = repo.targets(specs)
    for target in targets:
        absent = repo.cache.missing(target.manifest.files)
        if absent:
            spec = target.manifest.name + (f"@{target.rev}" if target.rev else "")
            raise MissingData(
                f"'{spec}' needs {len(absent)} data file(s) that are not in the cache",
                hint=f"run `mreg pull {spec}`",
            )
    with repo.state.batch():  # one write of the state file, however many artifacts
        for target in targets:
            if target.rev is not None:
                text = repo.git.show(target.rev, target.manifest_rel)
                assert text is not None
                atomic_write_bytes(repo.root / target.manifest_rel, text)
                ignore_in_git(repo.root, target.artifact_rel)
            restore(repo, target.manifest_rel, target.manifest, force=force)
    return targets
