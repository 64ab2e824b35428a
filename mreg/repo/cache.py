"""The local cache: immutable Lance data files, and datasets rebuilt from manifests.

Layout under ``.mreg/``::

    cache/data/<lance file>        every data file of every version (never rewritten)
    cache/views/<key>.lance/       one Lance dataset per distinct manifest content: hard links
                                   to cache/data plus a single committed version
    cache/views/<key>-<base>.lance/  the same version read in place from a remote: a single
                                   committed version (a few KiB) whose data files are at the
                                   remote's root (a Lance base path), no data here
    cache/served/<key>             a version rebuilt in its original format for `mreg serve`'s
                                   downloads (and its exports), with <key>.sha256 beside it
    tmp/                           staging for conversions and downloads (safe to delete)

A view is built from the fragment list a manifest records, so two branches that each made "the
next version" of an artifact never fight over Lance's per-directory version numbers. Views are
derived data: one that lost its version, or links files that are no longer the cache's (a file
fetched again after it was found corrupt), is built again.

Data files enter the cache, and are checked before first use, as ``cache_files`` says.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import MissingData, MregError, one_line
from mreg.hashing import sha256_bytes
from mreg.repo.cache_files import CacheFiles
from mreg.repo.manifest import DELETIONS, Manifest

if TYPE_CHECKING:
    import lance
    from lance.fragment import FragmentMetadata

# The id of the remote's base path in a remote view's Lance manifest (0 is the view itself).
REMOTE_BASE_ID = 1
# The id of the base path at the remote's data/ folder, whose _deletions/ holds deletion files.
REMOTE_DELETIONS_ID = 2


class Cache(CacheFiles):
    """The cache's data files (see ``CacheFiles``), and the Lance views built from them."""

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
        check: bool = True,
    ) -> lance.LanceDataset:
        """The Lance dataset holding exactly the version ``manifest`` records: its data files in
        the cache, or with ``base`` those at ``base`` (a remote's root, as push lays it out: the
        files under ``base/data/``), which Lance reads there with ``storage_options``.

        Cache files are checked first (see ``check``) unless ``check`` is false: for a caller
        that checks every value it reads against a digest of its own.
        """

        if base is None and check:
            self.check(manifest.files, manifest.name)
        view = self.view_path(manifest, base)
        if not self._view_intact(manifest, view, base):
            self._build_view(manifest, view, base)
        try:
            return _opened(manifest, view, storage_options)
        except (OSError, ValueError, RuntimeError) as error:
            # A view is derived data: one damaged in a way _view_intact cannot see (a version
            # manifest zeroed) is built again, once.
            self._build_view(manifest, view, base)
            try:
                return _opened(manifest, view, storage_options)
            except (OSError, ValueError, RuntimeError):
                raise MregError(
                    f"cannot open the Lance view of '{manifest.name}' in {view.parent}: "
                    f"{one_line(error)}",
                    hint="delete .mreg/cache/views and try again",
                ) from error

    def _view_intact(self, manifest: Manifest, view: Path, base: str | None) -> bool:
        """The view has a committed version and, read from the cache, links to the very cache
        files (same inode): a file fetched again after it was found corrupt is a new inode,
        and a view still linking the old one would serve the old bytes."""
        if not (view / "_versions").is_dir() or not any((view / "_versions").iterdir()):
            return False
        if base is not None:
            return True
        for entry in manifest.files:
            try:
                if (view / entry.path).stat().st_ino != self.path(entry.path).stat().st_ino:
                    return False
            except FileNotFoundError:
                return False
        return True

    def _build_view(self, manifest: Manifest, view: Path, base: str | None) -> None:
        """Commit one Lance version whose fragments are those ``manifest`` records, built
        beside the view (on its file system, where hard links to the cache work) and renamed
        into place; a view already there is replaced."""
        import lance

        with self.staging(".lance", folder=view.parent) as stage:
            committed: lance.LanceDataset | None = None
            for operation in self._overwrite(manifest, stage, base):
                read = committed.version if committed is not None else None
                committed = lance.LanceDataset.commit(str(stage), operation, read_version=read)
            if view.exists():
                with self.staging(folder=view.parent) as old:
                    with contextlib.suppress(FileNotFoundError):  # another process's rebuild
                        os.rename(view, old / "view")
                    self._rename_view(stage, view)
            else:
                self._rename_view(stage, view)
        if not (view / "_versions").is_dir():
            raise MregError(f"could not build a Lance view of '{manifest.name}' in {view.parent}")

    @staticmethod
    def _rename_view(stage: Path, view: Path) -> None:
        with contextlib.suppress(OSError):
            # Another process may have built the same view meanwhile: theirs is as good.
            os.rename(stage, view)

    def _overwrite(
        self, manifest: Manifest, stage: Path, base: str | None
    ) -> list[lance.LanceOperation.BaseOperation]:
        """The Lance operations that commit ``manifest``'s version in ``stage``: with its data
        files hard-linked there from the cache, or left where they are at ``base``. Lance takes
        no deletion files in an overwrite: fragments that hide rows get them in a second
        commit (a delete)."""
        import lance
        from lance import DatasetBasePath

        schema = lance.json_to_schema(json.loads(manifest.schema))
        if base is not None:
            # is_dataset_root: a data file's path is relative to <base>/data/, which is where
            # push puts it (remote key = prefix + "data/" + file name); deletion files are
            # under <base>/data/_deletions/, the second base's own _deletions/.
            bases = [
                DatasetBasePath(base, name="remote", is_dataset_root=True, id=REMOTE_BASE_ID),
                DatasetBasePath(
                    base.rstrip("/") + "/data",
                    name="remote-data",
                    is_dataset_root=True,
                    id=REMOTE_DELETIONS_ID,
                ),
            ]
            fragments = _fragments(manifest, REMOTE_BASE_ID)
            overwrite = lance.LanceOperation.Overwrite(
                schema, _without_deletions(fragments), initial_bases=bases
            )
            return [overwrite, *_deletions(fragments)]
        absent = self.missing(manifest.files)
        if absent:
            raise MissingData(
                f"'{manifest.name}' is missing {len(absent)} data file(s) from the cache",
                hint=f"run `mreg fetch {manifest.name}` (or `mreg pull`)",
            )
        for entry in manifest.files:
            link = stage / entry.path.replace(DELETIONS, "_deletions", 1)
            link.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(self.path(entry.path), link)
            except OSError:
                shutil.copyfile(self.path(entry.path), link)
        fragments = _fragments(manifest)
        overwrite = lance.LanceOperation.Overwrite(schema, _without_deletions(fragments))
        return [overwrite, *_deletions(fragments)]

    @property
    def served(self) -> Path:
        """Where ``mreg serve`` keeps the files it hands out (rebuilt when missing)."""
        return self.root / "served"

    def views(self) -> list[Path]:
        folder = self.root / "views"
        # Hidden names are views being built or replaced (see _build_view).
        found = folder.iterdir() if folder.exists() else iter(())
        return sorted(p for p in found if not p.name.startswith("."))


def _opened(
    manifest: Manifest, view: Path, storage_options: dict[str, str] | None
) -> lance.LanceDataset:
    """The view opened; ValueError when it does not hold the manifest's fragments and rows
    (Lance opens a zeroed version manifest as an empty dataset)."""
    import lance

    dataset = lance.dataset(str(view), storage_options=storage_options)
    fragments = len(dataset.get_fragments())
    if fragments != len(manifest.fragments) or dataset.count_rows() != manifest.rows:
        raise ValueError(f"the view holds {fragments} fragment(s), not {len(manifest.fragments)}")
    return dataset


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
        if metadata.get("deletion_file"):
            metadata["deletion_file"]["base_id"] = REMOTE_DELETIONS_ID
        fragments.append(FragmentMetadata.from_json(json.dumps(metadata)))
    return fragments


def _without_deletions(fragments: list[FragmentMetadata]) -> list[FragmentMetadata]:
    """``fragments`` with every row shown, as a Lance overwrite takes them."""
    from lance.fragment import FragmentMetadata

    plain = []
    for fragment in fragments:
        metadata = fragment.to_json()
        metadata["deletion_file"] = None
        plain.append(FragmentMetadata.from_json(json.dumps(metadata)))
    return plain


def _deletions(fragments: list[FragmentMetadata]) -> list[lance.LanceOperation.BaseOperation]:
    """The delete that gives fragments their deletion files, if any has one."""
    import lance

    hiding = [f for f in fragments if f.deletion_file is not None]
    return [lance.LanceOperation.Delete(hiding, [], "mreg")] if hiding else []
