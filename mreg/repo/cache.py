"""The local cache: immutable Lance data files, and datasets rebuilt from manifests.

Layout under ``.mreg/``::

    cache/data/<lance file>        every data file of every version (never rewritten)
    cache/views/<key>.lance/       one Lance dataset per distinct manifest content: hard links
                                   to cache/data plus a single committed version
    cache/views/<key>-<base>.lance/  the same version read in place from a remote: a single
                                   committed version (a few KiB) whose data files are at the
                                   remote's root (a Lance base path), no data here
    tmp/                           staging for conversions and downloads (safe to delete)

A view is built from the fragment list a manifest records, so two branches that each made "the
next version" of an artifact never fight over Lance's per-directory version numbers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.atomic import move_file
from mreg.errors import IntegrityError, MissingData, MregError, local_faults
from mreg.hashing import sha256_bytes, sha256_file, sha256_files
from mreg.repo.manifest import FileEntry, Manifest
from mreg.repo.state import State

if TYPE_CHECKING:
    import lance
    from lance.fragment import FragmentMetadata

# The id of the remote's base path in a remote view's Lance manifest (0 is the view itself).
REMOTE_BASE_ID = 1


class Cache:
    def __init__(self, mreg_dir: Path, state: State) -> None:
        self.root = mreg_dir / "cache"
        self.tmp = mreg_dir / "tmp"
        self.state = state

    def path(self, relpath: str) -> Path:
        return self.root / relpath

    def has(self, entry: FileEntry) -> bool:
        """Present with the recorded size (``verify`` re-hashes; this is the cheap check)."""
        try:
            return self.path(entry.path).stat().st_size == entry.size
        except FileNotFoundError:
            return False

    def missing(self, entries: Iterable[FileEntry]) -> list[FileEntry]:
        return [e for e in entries if not self.has(e)]

    def all_files(self) -> dict[str, int]:
        data = self.root / "data"
        if not data.exists():
            return {}
        return {
            p.relative_to(self.root).as_posix(): p.stat().st_size
            for p in data.rglob("*")
            if p.is_file()
        }

    @contextlib.contextmanager
    def staging(self, suffix: str = "", within: Path | None = None) -> Iterator[Path]:
        """A fresh temporary directory in ``within`` (default ``.mreg/tmp``), removed afterwards
        whatever happens. A full or read-only disk inside is an error naming the folder."""
        parent = within or self.tmp
        with local_faults(parent):
            parent.mkdir(parents=True, exist_ok=True)
            path = Path(tempfile.mkdtemp(dir=parent, prefix="stage-", suffix=suffix))
            try:
                yield path
            finally:
                shutil.rmtree(path, ignore_errors=True)

    def ingest(self, dataset_dir: Path, relpaths: Iterable[str]) -> list[FileEntry]:
        """Hash staged Lance files and move them into the cache; returns their entries."""
        ordered = sorted(relpaths)
        sources = [dataset_dir / relpath for relpath in ordered]
        digests = sha256_files(sources)
        entries = []
        with self.state.batch():
            for relpath, source, digest in zip(ordered, sources, digests, strict=True):
                entry = FileEntry(relpath, source.stat().st_size, digest)
                target = self.path(relpath)
                target.parent.mkdir(parents=True, exist_ok=True)
                move_file(source, target)
                self._remember_checked(entry)
                entries.append(entry)
        return entries

    def receive(self, entry: FileEntry, downloaded: Path, actual: str) -> None:
        """Move a downloaded file into the cache, only if ``actual``, the sha256 computed while
        it was written, is the recorded one."""
        if actual != entry.sha256:
            downloaded.unlink(missing_ok=True)
            raise IntegrityError(
                f"{entry.path}: downloaded bytes have sha256 {actual[:12]}…, "
                f"the manifest records {entry.sha256[:12]}…",
                hint="the remote copy is corrupt: `mreg verify --remote R` names every such "
                "file; `mreg push --repair` from a clone with good copies replaces them",
            )
        target = self.path(entry.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        move_file(downloaded, target)
        self._remember_checked(entry)

    def is_checked(self, entry: FileEntry) -> bool:
        """Its sha256 was checked on the way into the cache, and the file has not changed since
        (same size, mtime and inode): reading it needs no second hashing."""
        return self.state.known_sha256(self._state_key(entry.path)) == entry.sha256

    def forget(self, relpaths: Iterable[str]) -> None:
        """Drop what is remembered about cache files that were deleted."""
        self.state.forget([self._state_key(relpath) for relpath in relpaths])

    def _remember_checked(self, entry: FileEntry) -> None:
        self.state.remember_sha256(self._state_key(entry.path), entry.sha256)

    def _state_key(self, relpath: str) -> str:
        return self.path(relpath).relative_to(self.state.root).as_posix()

    def temp_file(self) -> Path:
        self.tmp.mkdir(parents=True, exist_ok=True)
        return self.tmp / f"download-{uuid.uuid4().hex}"

    def verify(self, entry: FileEntry) -> str | None:
        """None when the cached file has the recorded sha256, else what is wrong."""
        path = self.path(entry.path)
        if not path.exists():
            return "missing from cache"
        if sha256_file(path) != entry.sha256:
            return "corrupt in cache (sha256 mismatch)"
        return None

    def view_path(self, manifest: Manifest, base: str | None = None) -> Path:
        """Where the view of ``manifest`` lives; a remote view's name adds a digest of ``base``,
        whose address is part of its committed version."""
        key = manifest.content_key()
        if base is not None:
            key += "-" + sha256_bytes(base.encode())[:12]
        return self.root / "views" / f"{key}.lance"

    def open(
        self,
        manifest: Manifest,
        base: str | None = None,
        storage_options: dict[str, str] | None = None,
    ) -> lance.LanceDataset:
        """The Lance dataset holding exactly the version ``manifest`` records: its data files in
        the cache, or with ``base`` those at ``base`` (a remote's root, as push lays it out: the
        files under ``base/data/``), which Lance reads there with ``storage_options``."""
        import lance

        view = self.view_path(manifest, base)
        if not (view / "_versions").exists():
            self._build_view(manifest, view, base)
        return lance.dataset(str(view), storage_options=storage_options)

    def _build_view(self, manifest: Manifest, view: Path, base: str | None) -> None:
        """Commit one Lance version whose fragments are those ``manifest`` records."""
        import lance

        # Staged beside the view, on the cache's file system: hard links and the rename
        # work even when the cache is on another disk than .mreg/tmp.
        with self.staging(".lance", within=view.parent) as stage:
            lance.LanceDataset.commit(str(stage), self._overwrite(manifest, stage, base))
            with contextlib.suppress(OSError):
                # Another process may have built the same view meanwhile: theirs is as good.
                os.rename(stage, view)
        if not (view / "_versions").exists():
            shutil.rmtree(view, ignore_errors=True)
            raise MregError(f"could not build a Lance view of '{manifest.name}' in {view.parent}")

    def _overwrite(
        self, manifest: Manifest, stage: Path, base: str | None
    ) -> lance.LanceOperation.Overwrite:
        """The Lance operation that commits ``manifest``'s version in ``stage``: with its data
        files hard-linked there from the cache, or left where they are at ``base``."""
        import lance
        from lance import DatasetBasePath

        schema = lance.json_to_schema(json.loads(manifest.schema))
        if base is not None:
            # is_dataset_root: a data file's path is relative to <base>/data/, which is where
            # push puts it (remote key = prefix + "data/" + file name).
            bases = [DatasetBasePath(base, name="remote", is_dataset_root=True, id=REMOTE_BASE_ID)]
            fragments = _fragments(manifest, REMOTE_BASE_ID)
            return lance.LanceOperation.Overwrite(schema, fragments, initial_bases=bases)
        absent = self.missing(manifest.files)
        if absent:
            raise MissingData(
                f"'{manifest.name}' is missing {len(absent)} data file(s) from the cache",
                hint=f"run `mreg fetch {manifest.name}` (or `mreg pull`)",
            )
        for entry in manifest.files:
            link = stage / entry.path
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path(entry.path), link)
            except OSError:
                shutil.copyfile(self.path(entry.path), link)
        return lance.LanceOperation.Overwrite(schema, _fragments(manifest))

    def views(self) -> list[Path]:
        folder = self.root / "views"
        return sorted(folder.iterdir()) if folder.exists() else []


def _fragments(manifest: Manifest, base_id: int | None = None) -> list[FragmentMetadata]:
    """The manifest's fragments; with ``base_id``, every data file at that Lance base path."""
    from lance.fragment import FragmentMetadata

    if base_id is None:
        return [FragmentMetadata.from_json(f.metadata) for f in manifest.fragments]
    fragments = []
    for fragment in manifest.fragments:
        metadata = json.loads(fragment.metadata)
        for data_file in metadata["files"]:
            data_file["base_id"] = base_id
        fragments.append(FragmentMetadata.from_json(json.dumps(metadata)))
    return fragments
