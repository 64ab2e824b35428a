"""``mreg checkout``: give artifacts back in their original format from the cache."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, cast

from mreg import converters
from mreg.atomic import (
    O_BINARY,
    PendingFile,
    atomic_write_bytes,
    move,
    owned_prefix,
    remove_stale,
)
from mreg.converters.base import DatasetConverter, ModelConverter, inside
from mreg.converters.base import Target as BaseTarget
from mreg.errors import IntegrityError, MissingData, WorkTreeChanged, local_faults
from mreg.hashing import HashingWriter, sha256_tree, tree_files
from mreg.repo import manifest as manifests
from mreg.repo.git import ignore_in_git
from mreg.repo.manifest import Manifest
from mreg.storage.landing import Copy

if TYPE_CHECKING:
    from mreg.repo import Repo, Target


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


def restore(repo: Repo, manifest_rel: str, manifest: Manifest, force: bool = False) -> Path:
    """Write the artifact of ``manifest`` into the work tree unless it is already in sync;
    without ``force``, refuse to overwrite bytes that mreg does not hold."""
    artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
    if not force:
        if repo.workspace_in_sync(artifact_rel, manifest):
            return repo.root / artifact_rel
        refuse_unheld_changes(repo, [(artifact_rel, manifest)], "checkout")
    with Restoration(repo, manifest_rel, manifest) as restoration:
        return restoration.finish()


def holds(repo: Repo, artifact_rel: str, digest: str | None, known: bool = False) -> bool:
    """Whether the bytes with ``digest`` at ``artifact_rel`` are ones mreg wrote or added there,
    and the cache still has their data: replacing or removing them loses nothing. A record of
    an older mreg, which did not list the data files, counts unless ``known`` is asked for."""
    held = repo.state.held(artifact_rel)
    if held is None or held.sha256 != digest:
        return False
    if held.files is None:
        return not known
    return not repo.cache.missing(held.files)


def unheld_changes(repo: Repo, artifact_rel: str, manifest: Manifest) -> list[str]:
    """Paths of work the artifact's file or folder holds that mreg does not: a change never
    added, or files put in a tracked folder (named one by one when mreg knows what it wrote)."""
    digest = repo.workspace_digest(artifact_rel, manifest.source.companions)
    if digest is None or repo.workspace_in_sync(artifact_rel, manifest):
        return []
    if holds(repo, artifact_rel, digest):
        return []
    path = repo.root / artifact_rel
    held = repo.state.held(artifact_rel)
    if held is not None and held.sha256 == digest:
        return [f"{artifact_rel} (mreg wrote it, but its data are no longer in the cache)"]
    if path.is_dir() and held is not None and held.names:
        names = {p.relative_to(path).as_posix() for p in tree_files(path)}
        extra = sorted(names - set(held.names))
        if extra:
            return [f"{artifact_rel}/{name}" for name in extra]
    return [artifact_rel + ("/" if path.is_dir() else "")]


def refuse_unheld_changes(repo: Repo, artifacts: list[tuple[str, Manifest]], command: str) -> None:
    """WorkTreeChanged naming every path of ``artifacts`` that holds work mreg does not hold."""
    changed = [p for rel, manifest in artifacts for p in unheld_changes(repo, rel, manifest)]
    if not changed:
        return
    shown = ", ".join(changed[:5]) + (f" and {len(changed) - 5} more" if len(changed) > 5 else "")
    raise WorkTreeChanged(
        f"{command} would overwrite work that mreg does not hold: {shown}",
        hint=f"keep it with `mreg add PATH`, or discard it with `mreg {command} --force`",
    )


def _remove_stale_temporaries(repo: Repo, targets: list[Target]) -> None:
    """Remove what killed mreg processes left beside the targets' files and manifests, even
    where nothing is to be written now (one listing per folder)."""
    names: dict[Path, list[str]] = {}
    for target in targets:
        for rel in (target.artifact_rel, target.manifest_rel):
            path = repo.root / rel
            names.setdefault(path.parent, []).append(path.name)
    for folder, found in names.items():
        remove_stale(folder, found)


def remove_leftovers(repo: Repo, tracked: set[str]) -> tuple[list[str], list[str]]:
    """Delete the files (or folders) mreg wrote or added for artifacts whose manifest is no
    longer in the work tree (a ``git checkout`` of a commit without them): git would see them as
    new files. Only bytes mreg holds are deleted; the others are kept. Returns (removed, kept)."""
    removed, kept = [], []
    for rel in repo.state.held_paths():
        if rel + manifests.SUFFIX in tracked or not _inside_work_tree(repo, rel):
            continue
        path = repo.root / rel
        if not path.exists():
            repo.state.forget_held(rel)
            continue
        if not holds(repo, rel, repo.state.file_sha256(rel), known=True):
            kept.append(rel)
            continue
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink()
        repo.state.forget_held(rel)
        removed.append(rel)
    return removed, kept


def _inside_work_tree(repo: Repo, rel: str) -> bool:
    """A path the state names is trusted only if it stays in the work tree, outside .git and
    .mreg, without passing through a symbolic link."""
    path = repo.root / rel
    parts = Path(rel).parts
    if not parts or Path(rel).is_absolute() or ".." in parts or parts[0] in (".git", ".mreg"):
        return False
    return path.parent.resolve() == repo.root / Path(rel).parent and not path.is_symlink()


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
        write = _writer(self.repo, self.manifest, self.converter, self.assembled, placed)
        if self._folder is not None:
            write(self._folder)
            digest = self.manifest.source.sha256 if self.assembled else sha256_tree(self._folder)
        else:
            assert self._pending is not None
            with open(self._pending.temporary, "r+b") as raw:
                digest = _write_file(raw, write, self.manifest, self.assembled)
        _check_exact(self.artifact_rel, self.manifest, digest)
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
    # would only hash the same bytes twice. Otherwise every tensor is checked against its
    # digest, except those in files this process hashed already (downloaded by this pull);
    # a mismatch makes ``finish`` find the corrupt file and take it out of the cache.
    hashed_whole = manifest.source.restore == "exact" and not assembled
    checked = {e.sha256 for e in manifest.files if repo.cache.is_checked(e)}
    tensors = tensor_table.read_stored_tensors(
        manifest,
        repo.cache.root,
        lambda: repo.cache.open(manifest, check=False),
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


def checkout(repo: Repo, specs: list[str] | None, force: bool = False) -> CheckedOut:
    """Restore the named artifacts (all when none is named); ``NAME@REV`` rolls one back.

    Every target is checked before anything is written (missing data; without ``force``, work
    that mreg does not hold and would overwrite), so a checkout that cannot complete changes
    nothing. A checkout of every artifact also removes the files of artifacts no longer tracked
    (see ``remove_leftovers``).
    """
    targets = repo.targets(specs)
    return checkout_targets(repo, targets, force, everything=not specs)


def checkout_targets(
    repo: Repo,
    targets: list[Target],
    force: bool = False,
    started: Mapping[str, Restoration] | None = None,
    everything: bool = False,
    command: str = "checkout",
) -> CheckedOut:
    """``checkout`` of ``targets``; ``started``: restorations a pull opened before fetching
    (by manifest path), which this finishes instead of starting new ones; ``everything``:
    ``targets`` are all the work tree's artifacts."""
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


def export_copy(repo: Repo, manifest: Manifest, target: Path) -> str:
    """Write the artifact of ``manifest`` from the cache at ``target`` (a new file, or a new
    folder), outside the work tree and its state; returns its sha256 (of the file, or
    ``sha256_tree`` of the folder), checked against the manifest for an exact restore."""
    converter = converters.get(manifest.source.format)
    write = _writer(repo, manifest, converter, assembled=False, placed={})
    if converter.directory:
        target.mkdir(parents=True)
        write(target)
        digest = sha256_tree(target)
    else:
        with open(target, "wb") as raw:
            digest = _write_file(raw, write, manifest, assembled=False)
    _check_exact(manifest.path, manifest, digest)
    return digest
