"""Artifacts written back into the work tree from the cache: one at a time (``Restoration``,
which a pull opens before it downloads so that tensors land in place), and a set of them checked
first and restored together (``restore_targets``, what checkout and pull share)."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, cast

from mreg import converters
from mreg.atomic import O_BINARY, PendingFile, atomic_write_bytes, move, owned_prefix, remove_stale
from mreg.converters.base import ModelConverter, inside
from mreg.errors import IntegrityError, MissingData, local_faults
from mreg.hashing import sha256_tree
from mreg.repo import manifest as manifests
from mreg.repo import tensor_reader
from mreg.repo.gitignore import ignore_in_git
from mreg.repo.held import refuse_unheld_changes, remove_leftovers
from mreg.repo.rebuild import check_exact, write_file, writer
from mreg.storage.landing import Copy

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.repo.targets import Target
    from mreg.repo.work_tree import WorkTree


class CheckedOut(list["Target"]):
    """The targets checked out, and what became of the files of artifacts that no manifest in
    the work tree tracks any more (a checkout of every artifact looks for them): ``removed``,
    deleted because the cache holds their bytes; ``kept``, left in place because it does not
    (changed since mreg wrote them, or their data are gone from the cache)."""

    def __init__(
        self, targets: list[Target], removed: list[str] | None = None, kept: list[str] | None = None
    ) -> None:
        super().__init__(targets)
        self.removed = removed or []
        self.kept = kept or []


def restore(repo: WorkTree, manifest_rel: str, manifest: Manifest, force: bool = False) -> Path:
    """Write the artifact of ``manifest`` into the work tree unless it is already in sync;
    without ``force``, refuse to overwrite bytes that mreg does not hold."""
    artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
    if not force:
        if repo.workspace_in_sync(artifact_rel, manifest):
            return repo.root / artifact_rel
        refuse_unheld_changes(repo, [(artifact_rel, manifest)], "checkout")
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

    def __init__(self, repo: WorkTree, manifest_rel: str, manifest: Manifest) -> None:
        self.repo = repo
        self.manifest = manifest
        self.artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
        self.target = repo.write_target(self.artifact_rel)
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
        names = [tensor.name for tensor in self.manifest.tensors]
        converter = cast(ModelConverter, self.converter)
        places = converter.placements(names, self.manifest.source.restore_info)
        holders = tensor_reader.holding_files(self.manifest)
        wanted: dict[str, list[Copy]] = {}
        for index, (place, entry) in enumerate(zip(places, holders, strict=True)):
            if place is None or entry is None or self.repo.cache.has(entry):
                continue
            copy = Copy(self._output(place.file), place.offset, path=self.target / place.file)
            self._landing[index] = copy
            wanted.setdefault(entry.path, []).append(copy)
        return wanted

    def finish(self, before_swap: Callable[[Path, str], None] | None = None) -> Path:
        """Write what did not land, check, swap the result in for the work-tree copy.

        ``before_swap(built, sha256)`` runs once the result is complete and checked, before it
        replaces the work-tree copy: an append records its manifest there, so that a kill
        leaves the new manifest with the old file (a re-run finishes) or neither changed."""
        self._close_outputs()
        try:
            digest = self._write()
        except IntegrityError:
            # A tensor or the whole result did not match: find the corrupt cache file and
            # take it out, so that a pull fetches it again (this raises naming it).
            cache = self.repo.cache
            cache.check([e for e in self.manifest.files if cache.has(e)], self.manifest.name)
            raise
        if self._folder is not None:
            if before_swap is not None:
                before_swap(self._folder, digest)
            self._swap_folder_in(self._folder)
        else:
            assert self._pending is not None
            if before_swap is not None:
                before_swap(self._pending.temporary, digest)
            self._pending.commit()
        # Remembered with the file's (or folder's) fingerprint: `mreg status` need not hash it.
        with self.repo.state.batch():
            self.repo.state.remember_sha256(self.artifact_rel, digest)
            self.repo.state.remember_held(self.artifact_rel, self.manifest, digest)
        return self.target

    def _write(self) -> str:
        """Write the output, check it, and return its digest."""
        # Only copies whose download completed and checked hold their bytes.
        placed = {index: copy.offset for index, copy in self._landing.items() if copy.landed}
        write = writer(self.repo, self.manifest, self.converter, self.assembled, placed)
        if self._folder is not None:
            write(self._folder)
            digest = self.manifest.source.sha256 if self.assembled else sha256_tree(self._folder)
        else:
            assert self._pending is not None
            with open(self._pending.temporary, "r+b") as raw:
                digest = write_file(raw, write, self.manifest, self.assembled)
        check_exact(self.artifact_rel, self.manifest, digest)
        return digest

    def _output(self, file: str) -> int:
        """A descriptor for writing ``file`` of the output ("": the single file)."""
        if file not in self._outputs:
            if self._folder is not None:
                path = inside(self._folder, file)
                path.parent.mkdir(parents=True, exist_ok=True)
            else:
                assert self._pending is not None and file == ""
                path = self._pending.temporary
            self._outputs[file] = os.open(path, os.O_WRONLY | os.O_CREAT | O_BINARY, 0o644)
        return self._outputs[file]

    def _close_outputs(self) -> None:
        for fd in self._outputs.values():
            os.close(fd)
        self._outputs.clear()

    def _swap_folder_in(self, built: Path) -> None:
        """Put the folder built in the cache's staging area in place of the work-tree one.

        The old one is renamed aside first, beside it (on its file system, under a temporary's
        name that a later command removes if this one dies), then deleted."""
        self.target.parent.mkdir(parents=True, exist_ok=True)
        aside = None
        if self.target.exists() or self.target.is_symlink():
            aside = self.target.parent / f"{owned_prefix(self.target.name)}{os.urandom(4).hex()}"
            os.rename(self.target, aside)
        move(built, self.target)
        if aside is not None:
            if aside.is_dir() and not aside.is_symlink():
                shutil.rmtree(aside, ignore_errors=True)
            else:
                aside.unlink(missing_ok=True)


def restore_targets(
    repo: WorkTree,
    targets: list[Target],
    force: bool = False,
    started: Mapping[str, Restoration] | None = None,
    everything: bool = False,
    command: str = "checkout",
) -> CheckedOut:
    """Restore ``targets`` as ``checkout`` promises (see ``mreg.repo.checkout``).

    ``started``: restorations a pull opened before fetching (by manifest path), which this
    finishes instead of starting new ones; ``everything``: ``targets`` are all the work tree's
    artifacts; ``command``: the verb named in errors."""
    for target in targets:
        repo.write_target(target.manifest_rel)  # the artifact's folder: the same
        absent = repo.cache.missing(target.manifest.files)
        if absent:
            spec = target.manifest.name + (f"@{target.rev}" if target.rev else "")
            raise MissingData(
                f"'{spec}' needs {len(absent)} data file(s) that are not in the cache",
                hint=f"run `mreg pull {spec}`",
            )
    if not force:
        refuse_unheld_changes(repo, [(t.artifact_rel, t.manifest) for t in targets], command)
    _remove_stale_temporaries(repo, targets)
    started = started or {}
    removed: list[str] = []
    kept: list[str] = []
    with repo.state.batch():  # one write of the state file, however many artifacts
        if everything:
            removed, kept = remove_leftovers(repo, {t.manifest_rel for t in targets})
        for target in targets:
            if target.rev is not None:
                text = repo.git.show(target.rev, target.manifest_rel)
                assert text is not None
                atomic_write_bytes(repo.write_target(target.manifest_rel), text)
                ignore_in_git(repo.root, target.artifact_rel)
            with local_faults(repo.root / target.artifact_rel):
                if target.manifest_rel in started:
                    started[target.manifest_rel].finish()
                else:
                    restore(repo, target.manifest_rel, target.manifest, force=force)
    return CheckedOut(targets, removed, kept)


def _remove_stale_temporaries(repo: WorkTree, targets: list[Target]) -> None:
    """Remove what killed mreg processes left beside the targets' files and manifests, even
    where nothing is to be written now (one listing per folder)."""
    names: dict[Path, list[str]] = {}
    for target in targets:
        for rel in (target.artifact_rel, target.manifest_rel):
            path = repo.root / rel
            names.setdefault(path.parent, []).append(path.name)
    for folder, found in names.items():
        remove_stale(folder, found)
