"""``mreg checkout``: give artifacts back in their original format from the cache."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from mreg import converters
from mreg.atomic import PendingFile, atomic_write_bytes, sweep_leftovers
from mreg.converters.base import DatasetConverter, ModelConverter, inside
from mreg.converters.base import Target as BaseTarget
from mreg.errors import IntegrityError, MissingData, local_faults
from mreg.hashing import HashingWriter, sha256_tree
from mreg.repo import manifest as manifests
from mreg.repo.git import ignore_in_git
from mreg.repo.manifest import Manifest
from mreg.storage.landing import Copy

if TYPE_CHECKING:
    from mreg.repo import Repo, Target


def restore(repo: Repo, manifest_rel: str, manifest: Manifest, force: bool = False) -> Path:
    """Write the artifact of ``manifest`` into the work tree unless it is already in sync."""
    artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
    if not force and repo.workspace_in_sync(artifact_rel, manifest):
        return repo.root / artifact_rel
    with Restoration(repo, manifest_rel, manifest) as restoration:
        return restoration.finish()


class Restoration:
    """One artifact being written back, in two steps so that a pull can land downloads in it.

    Opening it creates the output beside the target (a temporary file, or a folder in the
    cache's staging area); ``copies`` says which downloads can go straight into it (tensors held
    whole by a data file not yet in the cache, where the format places them up front);
    ``finish`` writes the rest from the cache, checks the result and swaps it in. Closed without
    ``finish`` (an error, Ctrl-C), it leaves the work tree as it was.
    """

    def __init__(self, repo: Repo, manifest_rel: str, manifest: Manifest) -> None:
        self.repo = repo
        self.manifest = manifest
        self.artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
        self.target = repo.root / self.artifact_rel
        self.converter = converters.get(manifest.source.format)
        # An exact model restore assembled from checked bytes is the original by construction;
        # anything else is hashed as it is written and compared with what the manifest records.
        self.assembled = manifest.source.restore == "exact" and self.converter.assembled_exactly
        self._cleanup = contextlib.ExitStack()
        self._outputs: dict[str, int] = {}  # descriptors of output files that copies write to
        self._landing: dict[int, Copy] = {}  # by tensor index
        self._pending: PendingFile | None = None
        self._folder: Path | None = None

    def __enter__(self) -> Restoration:
        if self.converter.directory:
            self._folder = self._cleanup.enter_context(self.repo.cache.staging()) / "new"
            self._folder.mkdir()
        else:
            self._pending = PendingFile(self.target)
            self._cleanup.callback(self._pending.discard)
        return self

    def __exit__(self, *exc: object) -> None:
        self._close_outputs()
        self._cleanup.close()

    def copies(self) -> dict[str, list[Copy]]:
        """By cache path, where the bytes of files still to download go in the output."""
        if not (self.assembled and self.manifest.kind == "model"):
            return {}
        from mreg.repo import tensor_table  # numpy and pyarrow: only when a model is restored

        names = [tensor.name for tensor in self.manifest.tensors]
        converter = cast(ModelConverter, self.converter)
        places = converter.placements(names, self.manifest.source.restore_info)
        holders = tensor_table.holding_files(self.manifest)
        wanted: dict[str, list[Copy]] = {}
        for index, (place, entry) in enumerate(zip(places, holders, strict=True)):
            if place is None or entry is None or self.repo.cache.has(entry):
                continue
            copy = Copy(self._output(place.file), place.offset, path=self.target / place.file)
            self._landing[index] = copy
            wanted.setdefault(entry.path, []).append(copy)
        return wanted

    def finish(self) -> Path:
        """Write what did not land, check, swap the result in for the work-tree copy."""
        self._close_outputs()
        # Only copies whose download completed and checked hold their bytes.
        placed = {index: copy.offset for index, copy in self._landing.items() if copy.landed}
        write = _writer(self.repo, self.manifest, self.converter, self.assembled, placed)
        if self._folder is not None:
            write(self._folder)
            digest = self.manifest.source.sha256 if self.assembled else sha256_tree(self._folder)
            _check_exact(self.artifact_rel, self.manifest, digest)
            self._swap_folder_in(self._folder)
        else:
            assert self._pending is not None
            with open(self._pending.temporary, "r+b") as raw:
                digest = _write_file(raw, write, self.manifest, self.assembled)
            _check_exact(self.artifact_rel, self.manifest, digest)
            self._pending.commit()
        # Remembered with the file's (or folder's) fingerprint: `mreg status` need not hash it.
        with self.repo.state.batch():
            self.repo.state.remember_sha256(self.artifact_rel, digest)
            self.repo.state.remember_restored(
                self.artifact_rel, self.manifest.content_key(), digest
            )
        return self.target

    def _output(self, file: str) -> int:
        """A descriptor for writing ``file`` of the output ("": the single file)."""
        if file not in self._outputs:
            if self._folder is not None:
                path = inside(self._folder, file)
                path.parent.mkdir(parents=True, exist_ok=True)
            else:
                assert self._pending is not None and file == ""
                path = self._pending.temporary
            self._outputs[file] = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        return self._outputs[file]

    def _close_outputs(self) -> None:
        for fd in self._outputs.values():
            os.close(fd)
        self._outputs.clear()

    def _swap_folder_in(self, built: Path) -> None:
        if self.target.exists() or self.target.is_symlink():
            os.rename(self.target, built.parent / "old")  # removed with the staging folder
        self.target.parent.mkdir(parents=True, exist_ok=True)
        os.rename(built, self.target)


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
    repo: Repo,
    manifest: Manifest,
    converter: converters.Converter,
    assembled: bool,
    placed: Mapping[int, int],
) -> Callable[[BaseTarget], None]:
    """A function that writes the artifact of ``manifest`` into a file object or folder."""
    if manifest.kind == "dataset":
        reader = repo.cache.open(manifest).scanner(scan_in_order=True).to_reader()
        return lambda target: cast(DatasetConverter, converter).write(reader, target)
    from mreg.repo import tensor_table

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
        placed=placed,
    )
    info = manifest.source.restore_info
    return lambda target: cast(ModelConverter, converter).write(tensors, info, target)


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
    checkout_targets(repo, targets, force)
    return targets


def checkout_targets(
    repo: Repo,
    targets: list[Target],
    force: bool = False,
    started: Mapping[str, Restoration] | None = None,
) -> None:
    """``checkout`` of ``targets``; ``started``: restorations a pull opened before fetching
    (by manifest path), which this finishes instead of starting new ones."""
    for target in targets:
        absent = repo.cache.missing(target.manifest.files)
        if absent:
            spec = target.manifest.name + (f"@{target.rev}" if target.rev else "")
            raise MissingData(
                f"'{spec}' needs {len(absent)} data file(s) that are not in the cache",
                hint=f"run `mreg pull {spec}`",
            )
    started = started or {}
    sweep_leftovers(written_paths(repo, [t for t in targets if t.manifest_rel not in started]))
    with repo.state.batch():  # one write of the state file, however many artifacts
        for target in targets:
            if target.rev is not None:
                text = repo.git.show(target.rev, target.manifest_rel)
                assert text is not None
                atomic_write_bytes(repo.root / target.manifest_rel, text)
                ignore_in_git(repo.root, target.artifact_rel)
            with local_faults(repo.root / target.artifact_rel):
                if target.manifest_rel in started:
                    started[target.manifest_rel].finish()
                else:
                    restore(repo, target.manifest_rel, target.manifest, force=force)


def written_paths(repo: Repo, targets: list[Target]) -> list[Path]:
    """The work-tree files a checkout of ``targets`` may write: artifact, manifest, .gitignore
    (where a killed checkout may have left temporary files: see ``sweep_leftovers``)."""
    paths = []
    for target in targets:
        artifact = repo.root / target.artifact_rel
        paths += [artifact, repo.root / target.manifest_rel, artifact.parent / ".gitignore"]
    return paths
