"""``mreg add --mode append``: a batch's rows added to a dataset as fragments of their own,
and the dataset's work-tree file rewritten to hold every row."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import lance
import pyarrow as pa

from mreg import converters
from mreg.converters.base import DatasetConverter, ReadOptions
from mreg.errors import UsageError
from mreg.hashing import path_size, sha256_path
from mreg.repo import lance_data
from mreg.repo import manifest as manifests
from mreg.repo.add_options import AddOptions, AddResult
from mreg.repo.gitignore import ignore_in_git
from mreg.repo.manifest import Manifest

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree


def target(
    repo: WorkTree, batch_path: Path, converter: converters.Converter, name: str | None
) -> tuple[str, Manifest] | None:
    """The dataset (manifest path, manifest) the rows of ``batch_path`` go to: ``name``, or
    the batch's own artifact. None for a batch inside the work tree that names no dataset yet:
    it is added as a new one."""
    if converter.kind != "dataset":
        raise UsageError("--mode append adds rows to a dataset; models are replaced with overwrite")
    outside = not batch_path.is_relative_to(repo.root)
    if name is None and outside:
        raise UsageError(
            f"{batch_path} is outside the repository: name the dataset its rows go to",
            hint=f"mreg add {batch_path} --name NAME --mode append",
        )
    if name is None:
        own = repo.manifests().get(repo.relpath(batch_path) + manifests.SUFFIX)
        name = own.name if own else None
    found = repo.lookup(name) if name is not None else None
    if found is None and outside:
        raise UsageError(
            f"no dataset named '{name}' to append {batch_path.name} to",
            hint="see `mreg ls`; a new dataset is added from a path inside the repository",
        )
    if found is not None and found[1].kind != "dataset":
        raise UsageError(f"'{found[1].name}' is a model; --mode append adds rows to datasets")
    return found


def append(
    repo: WorkTree,
    batch_path: Path,
    converter: DatasetConverter,
    dataset: tuple[str, Manifest],
    options: AddOptions,
    read: ReadOptions,
) -> AddResult:
    """Add the rows of ``batch_path`` to ``dataset`` (from ``target``) as new fragments."""
    manifest_rel, previous = dataset
    batch_sha = _batch_digest(repo, batch_path)
    if batch_sha in (previous.source.sha256, previous.source.appended):
        # The artifact itself, or the batch appended last: its rows are in already (a re-run
        # of an append that was interrupted after its manifest was written finishes it here).
        return _appended_already(repo, manifest_rel, previous, options.meta)
    reader = converter.read(batch_path, read)
    expected = lance.json_to_schema(json.loads(previous.schema))
    _check_same_schema(previous.name, batch_path.name, reader.schema, expected)
    first_id = max((f.id for f in previous.fragments), default=-1) + 1
    if options.engine is None:
        added = lance_data.write_table(repo, reader, expected, first_id)
    else:
        written = options.engine.write_table(repo, converter, batch_path, expected, first_id, read)
        added = lance_data.table_data(*written, expected)
    grown = replace(
        previous,
        rows=previous.rows + sum(f.rows for f in added.fragments),
        fragments=previous.fragments + added.fragments,
        files=tuple(sorted(previous.files + added.files, key=lambda f: f.path)),
        source=replace(previous.source, appended=batch_sha),
    ).with_meta(options.meta)
    final = _rewrite_artifact(repo, manifest_rel, grown)
    return AddResult(final, manifest_rel, changed=True, new_bytes=added.new_bytes)


def _batch_digest(repo: WorkTree, batch_path: Path) -> str:
    """sha256 of an append's batch: through the state inside the work tree, else hashed."""
    if batch_path.is_relative_to(repo.root):
        return repo.workspace_digest(repo.relpath(batch_path)) or ""
    return sha256_path(batch_path)


def _rewrite_artifact(repo: WorkTree, manifest_rel: str, grown: Manifest) -> Manifest:
    """Rewrite the artifact's work-tree file with every row of ``grown``, and write ``grown``
    with that file's digest. The manifest is written once, after the new file is complete and
    before it replaces the old one: a kill leaves both old, or the new manifest (whose
    ``appended`` digest makes the re-run finish the rewrite instead of appending again)."""
    from mreg.repo.download import fetch_manifests
    from mreg.repo.restoration import Restoration
    from mreg.repo.targets import Target

    ignore_in_git(repo.root, manifest_rel.removesuffix(manifests.SUFFIX))
    if repo.cache.missing(grown.files):  # a Ray add wrote its rows to the default remote only
        fetch_manifests(repo, [Target(manifest_rel, grown)], remote=None, jobs=8)
    recorded: list[Manifest] = []

    def record(built: Path, digest: str) -> None:
        source = replace(grown.source, size=path_size(built), sha256=digest)
        recorded.append(replace(grown, source=source))
        manifests.write(repo.root / manifest_rel, recorded[0])

    # The digest recorded so far is the old file's: nothing to compare the new file with.
    rewriting = replace(grown, source=replace(grown.source, restore="equivalent"))
    with Restoration(repo, manifest_rel, rewriting) as restoration:
        restoration.finish(before_swap=record)
    return recorded[0]


def _appended_already(
    repo: WorkTree, manifest_rel: str, previous: Manifest, meta: dict[str, str]
) -> AddResult:
    """Nothing to append: bring the work-tree file in line with the manifest if an interrupted
    append left the old one there, and record new metadata, if any."""
    manifest = previous.with_meta(meta)
    if manifest != previous:
        manifests.write(repo.root / manifest_rel, manifest)
    if not repo.workspace_in_sync(manifest_rel.removesuffix(manifests.SUFFIX), manifest):
        from mreg.repo.restoration import restore

        restore(repo, manifest_rel, manifest, force=True)
    return AddResult(manifest, manifest_rel, changed=manifest != previous, new_bytes=0)


def _check_same_schema(name: str, batch: str, actual: pa.Schema, expected: pa.Schema) -> None:
    if actual.remove_metadata().equals(expected.remove_metadata()):
        return

    def describe(schema: pa.Schema) -> str:
        return ", ".join(f"{f.name}:{f.type}" for f in schema)

    raise UsageError(
        f"cannot append {batch} to '{name}': its columns ({describe(actual)}) "
        f"differ from the dataset's ({describe(expected)})"
    )
