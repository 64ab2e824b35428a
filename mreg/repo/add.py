"""``mreg add``: convert a file into Lance data in the cache and write its manifest."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Literal, Protocol, cast

import lance
import pyarrow as pa
from lance.fragment import write_fragments

from mreg import converters
from mreg.converters.base import DatasetConverter, ModelConverter, ReadOptions
from mreg.errors import MregError, NameConflict, UsageError
from mreg.hashing import sha256_listing, sha256_path, sha256_tree, tree_digest, tree_files
from mreg.progress import bar
from mreg.repo import chunk_reuse, row_reuse, tensor_table
from mreg.repo import manifest as manifests
from mreg.repo.git import ignore_in_git, ignore_line
from mreg.repo.manifest import ColumnInfo, FileEntry, Fragment, Manifest, Source, TensorInfo

if TYPE_CHECKING:
    from mreg.repo import Repo

Mode = Literal["overwrite", "append"]


class Engine(Protocol):
    """Converts a dataset somewhere else than in this process (``mreg.ray.RayEngine``)."""

    def write_table(
        self,
        repo: Repo,
        converter: DatasetConverter,
        path: Path,
        schema: pa.Schema,
        first_id: int,
        options: ReadOptions,
    ) -> tuple[list[Fragment], list[FileEntry]]:
        """The rows of ``path`` as Lance fragments numbered from ``first_id``, in the order a
        local read gives them, their data files in the cache or on the default remote;
        nothing referenced on failure."""
        ...

    def source_listing(self, path: Path) -> list[tuple[str, int, str]]:
        """After ``write_table``: what ``sha256_listing(path)`` gives (a file: its one entry),
        from the digests taken where the sources were read."""
        ...


@dataclass(frozen=True)
class AddResult:
    manifest: Manifest
    manifest_path: str
    changed: bool
    new_bytes: int
    skipped: tuple[str, ...] = ()
    # Why the path was tracked as opaque bytes (blob, blob_dir); "" for a format mreg reads.
    opaque: str = ""


@dataclass(frozen=True)
class _Converted:
    fragments: tuple[Fragment, ...]
    files: tuple[FileEntry, ...]
    new_bytes: int
    tensors: tuple[TensorInfo, ...] = ()
    columns: tuple[ColumnInfo, ...] = ()
    schema: str = ""
    restore: manifests.Restore = "equivalent"
    restore_info: str = ""
    info: tuple[tuple[str, str], ...] = ()


def add(
    repo: Repo,
    path: str | Path,
    name: str | None = None,
    kind: str | None = None,
    format: str | None = None,
    mode: Mode = "overwrite",
    meta: dict[str, str] | None = None,
    skip_bad: bool = False,
    source_url: str = "",
    replace_meta: bool = False,
    engine: Engine | None = None,
) -> AddResult:
    """Track ``path``: convert it to Lance in the cache and write ``PATH.mreg.toml`` beside it.

    With ``skip_bad``, records a converter cannot read (a corrupt image) are left out and named
    in ``AddResult.skipped`` instead of failing the whole add. ``source_url`` records where the
    file was downloaded from (``mreg import``). ``meta`` is merged into the previous version's
    metadata, or replaces them with ``replace_meta``. With ``engine`` a dataset is converted by
    it (on a Ray cluster) into the same rows and the same manifest.
    """
    source_path = _source_path(repo, path, mode)
    if not source_path.exists():
        raise UsageError(f"{path}: no such file or folder")
    converter = converters.get(format) if format else converters.detect(source_path)
    opaque = ""
    if converter.format in (converters.OPAQUE_FILE, converters.OPAQUE_DIR):
        opaque = f"--format {format}" if format else converters.opaque_reason(source_path)
    if kind and kind != converter.kind:
        raise UsageError(
            f"{source_path.name} is a {converter.kind} ({converter.format}), not a {kind}"
        )
    if mode not in ("overwrite", "append"):
        raise UsageError(f"unknown mode '{mode}'", hint="use overwrite or append")
    repo.cache.tmp.mkdir(parents=True, exist_ok=True)
    if engine is not None and converter.kind != "dataset":
        raise UsageError(f"{source_path.name} is a model: only datasets convert on an engine")
    options = ReadOptions(skip_bad=skip_bad, scratch=repo.cache.tmp)
    if mode == "append":
        result = _append(repo, source_path, converter, name, meta or {}, options, engine)
    else:
        result = _overwrite(
            repo,
            source_path,
            converter,
            name,
            meta or {},
            options,
            source_url,
            replace_meta,
            engine,
        )
    # Its digest was hashed above: checkout may replace these bytes, the cache has them.
    artifact_rel = result.manifest_path.removesuffix(manifests.SUFFIX)
    repo.state.remember_held(artifact_rel, result.manifest, result.manifest.source.sha256)
    return replace(result, skipped=tuple(options.skipped), opaque=opaque)


def _source_path(repo: Repo, path: str | Path, mode: Mode) -> Path:
    """The source, made absolute. An append only reads its batch, so the batch may lie outside
    the work tree; whatever becomes an artifact must lie inside it."""
    absolute = Path(path).absolute()
    if mode == "append" and not absolute.resolve().is_relative_to(repo.root):
        return absolute.resolve()
    return repo.path_in_work_tree(path)


def _batch_digest(repo: Repo, batch_path: Path) -> str:
    """sha256 of an append's batch: through the state inside the work tree, else hashed."""
    if batch_path.is_relative_to(repo.root):
        return repo.workspace_digest(repo.relpath(batch_path)) or ""
    return sha256_path(batch_path)


def _overwrite(
    repo: Repo,
    source_path: Path,
    converter: converters.Converter,
    name: str | None,
    meta: dict[str, str],
    options: ReadOptions,
    source_url: str = "",
    replace_meta: bool = False,
    engine: Engine | None = None,
) -> AddResult:
    relpath = repo.relpath(source_path)
    manifest_rel = relpath + manifests.SUFFIX
    # Parsed once: every manifest is needed for the name check too.
    tracked = repo.manifests()
    previous = tracked.get(manifest_rel)
    if name is None:
        name = previous.name if previous else default_name(source_path)
    manifests.check_name(name)
    _check_name_free(tracked, name, manifest_rel)
    companions = tuple(converter.companions(source_path))
    folder = PurePosixPath(relpath).parent
    for rel in (relpath, *((folder / c).as_posix() for c in companions)):
        _check_git_can_ignore(repo, rel)
    size = _size(source_path) + sum((source_path.parent / c).stat().st_size for c in companions)
    sha: str | None = None
    if previous and previous.source.size == size and previous.source.format == converter.format:
        sha = repo.workspace_digest(relpath, companions) or ""  # perhaps unchanged: check first
    if (
        previous
        and sha is not None
        and previous.name == name
        and previous.source.sha256 == sha
        and previous.source.companions == companions
        and not repo.cache.missing(previous.files)
    ):
        updated = (
            replace(previous, meta=dict(sorted(meta.items())))
            if replace_meta
            else (previous.with_meta(meta))
        )
        if source_url and source_url != previous.source.url:
            updated = replace(updated, source=replace(updated.source, url=source_url))
        if updated != previous:
            manifests.write(repo.root / manifest_rel, updated)
        return AddResult(updated, manifest_rel, changed=updated != previous, new_bytes=0)
    # A new version. A source not hashed above is hashed on a thread while it converts (sha256
    # releases the GIL): for 1 GiB, 1 s of the 3.3 s an add took when one waited for the other.
    # A folder's files are listed (path, size, sha256) for `mreg diff`, in the same pass that
    # hashes the folder; opaque folders list them in their restore info already.
    listed = source_path.is_dir() and converter.format != converters.OPAQUE_DIR
    # An engine's tasks hash the sources they read: this process does not read them.
    hashed_by_engine = engine is not None and not companions
    with ThreadPoolExecutor(1, thread_name_prefix="mreg-source-hash") as hasher:
        if listed and not hashed_by_engine:
            listing = hasher.submit(sha256_listing, source_path)
        hashing = (
            hasher.submit(repo.workspace_digest, relpath, companions)
            if sha is None and not listed and not hashed_by_engine
            else None
        )
        # Unchanged tensors keep the fragments of the previous version, or of another model.
        donors = [m for rel, m in tracked.items() if rel != manifest_rel]
        donors = [previous, *donors] if previous else donors
        converted = _convert(repo, converter, source_path, previous, donors, options, engine)
        if hashing is not None:
            sha = hashing.result() or ""
        if hashed_by_engine:
            files = cast(Engine, engine).source_listing(source_path)
            if not listed and sha is None:
                sha = files[0][2]
                repo.state.remember_sha256(relpath, sha)
            files = files if listed else []
        else:
            files = listing.result() if listed else []
    if listed and sha is None:
        sha = tree_digest(files)
        repo.state.remember_sha256(relpath, sha)
    assert sha is not None
    kept_meta = previous.meta if previous else {}
    if options.skipped and source_path.is_dir():
        # The artifact is the folder without the skipped files: that is what checkout gives
        # back, and status shows the work tree (which still holds them) as changed.
        skipped = set(options.skipped)
        files = [f for f in files if f[0] not in skipped]
        sha = tree_digest(files) if listed else sha256_tree(source_path, leave_out=skipped)
        size = sum(
            p.stat().st_size
            for p in tree_files(source_path)
            if p.relative_to(source_path).as_posix() not in skipped
        )
    manifest = Manifest(
        name=name,
        kind=converter.kind,  # type: ignore[arg-type]
        path=source_path.name,
        source=Source(
            converter.format,
            size,
            sha,
            converted.restore,
            converted.restore_info,
            url=source_url,
            companions=companions,
            files=tuple(FileEntry(*f) for f in files),
        ),
        rows=sum(f.rows for f in converted.fragments),
        schema=converted.schema,
        fragments=converted.fragments,
        files=converted.files,
        columns=converted.columns,
        tensors=converted.tensors,
        meta=dict(sorted({**({} if replace_meta else kept_meta), **meta}.items())),
        info=dict(converted.info),
    )
    return _commit(repo, manifest, manifest_rel, converted.new_bytes)


def _append(
    repo: Repo,
    batch_path: Path,
    converter: converters.Converter,
    name: str | None,
    meta: dict[str, str],
    options: ReadOptions,
    engine: Engine | None = None,
) -> AddResult:
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
    else:
        manifests.check_name(name)
    target = repo.lookup(name) if name is not None else None
    if target is None and outside:
        raise UsageError(
            f"no dataset named '{name}' to append {batch_path.name} to",
            hint="see `mreg ls`; a new dataset is added from a path inside the repository",
        )
    if target is None:
        return _overwrite(repo, batch_path, converter, name, meta, options, engine=engine)
    manifest_rel, previous = target
    if previous.kind != "dataset":
        raise UsageError(f"'{previous.name}' is a model; --mode append adds rows to datasets")
    batch_sha = _batch_digest(repo, batch_path)
    if batch_sha in (previous.source.sha256, previous.source.appended):
        # The artifact itself, or the batch appended last: its rows are in already (a re-run
        # of an append that was interrupted after its manifest was written finishes it here).
        return _appended_already(repo, manifest_rel, previous, meta)
    reader = cast(DatasetConverter, converter).read(batch_path, options)
    expected = lance.json_to_schema(json.loads(previous.schema))
    _check_same_schema(previous.name, batch_path.name, reader.schema, expected)
    first_id = _next_fragment_id(previous)
    if engine is None:
        added = _write_table(repo, reader, expected, first_id)
    else:
        dataset = cast(DatasetConverter, converter)
        added = _converted(
            *engine.write_table(repo, dataset, batch_path, expected, first_id, options), expected
        )
    grown = replace(
        previous,
        rows=previous.rows + sum(f.rows for f in added.fragments),
        fragments=previous.fragments + added.fragments,
        files=tuple(sorted(previous.files + added.files, key=lambda f: f.path)),
        source=replace(previous.source, appended=batch_sha),
    ).with_meta(meta)
    final = _rewrite_artifact(repo, manifest_rel, grown)
    return AddResult(final, manifest_rel, changed=True, new_bytes=added.new_bytes)


def _rewrite_artifact(repo: Repo, manifest_rel: str, grown: Manifest) -> Manifest:
    """Rewrite the artifact's work-tree file with every row of ``grown``, and write ``grown``
    with that file's digest. The manifest is written once, after the new file is complete and
    before it replaces the old one: a kill leaves both old, or the new manifest (whose
    ``appended`` digest makes the re-run finish the rewrite instead of appending again)."""
    from mreg.repo import Target
    from mreg.repo.checkout import Restoration
    from mreg.repo.fetch import fetch_manifests

    ignore_in_git(repo.root, manifest_rel.removesuffix(manifests.SUFFIX))
    if repo.cache.missing(grown.files):  # a Ray add wrote its rows to the default remote only
        fetch_manifests(repo, [Target(manifest_rel, grown)], remote=None, jobs=8)
    recorded: list[Manifest] = []

    def record(built: Path, digest: str) -> None:
        source = replace(grown.source, size=_size(built), sha256=digest)
        recorded.append(replace(grown, source=source))
        manifests.write(repo.root / manifest_rel, recorded[0])

    # The digest recorded so far is the old file's: nothing to compare the new file with.
    rewriting = replace(grown, source=replace(grown.source, restore="equivalent"))
    with Restoration(repo, manifest_rel, rewriting) as restoration:
        restoration.finish(before_swap=record)
    return recorded[0]


def _appended_already(
    repo: Repo, manifest_rel: str, previous: Manifest, meta: dict[str, str]
) -> AddResult:
    """Nothing to append: bring the work-tree file in line with the manifest if an interrupted
    append left the old one there, and record new metadata, if any."""
    manifest = previous.with_meta(meta)
    if manifest != previous:
        manifests.write(repo.root / manifest_rel, manifest)
    if not repo.workspace_in_sync(manifest_rel.removesuffix(manifests.SUFFIX), manifest):
        repo.checkout_manifest(manifest_rel, manifest, force=True)
    return AddResult(manifest, manifest_rel, changed=manifest != previous, new_bytes=0)


def _commit(repo: Repo, manifest: Manifest, manifest_rel: str, new_bytes: int) -> AddResult:
    manifests.write(repo.root / manifest_rel, manifest)
    artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
    ignore_in_git(repo.root, artifact_rel)
    folder = PurePosixPath(artifact_rel).parent
    for companion in manifest.source.companions:
        ignore_in_git(repo.root, (folder / companion).as_posix())
    return AddResult(manifest, manifest_rel, changed=True, new_bytes=new_bytes)


def _convert(
    repo: Repo,
    converter: converters.Converter,
    path: Path,
    previous: Manifest | None,
    donors: list[Manifest],
    options: ReadOptions,
    engine: Engine | None = None,
) -> _Converted:
    """``previous`` lends a table its rows; ``donors`` (``previous`` first) lend a model its
    unchanged tensors."""
    if converter.kind == "dataset":
        reader = cast(DatasetConverter, converter).read(path, options)
        if engine is not None:  # Ray tasks write the fragments (no row reuse there yet)
            written = engine.write_table(
                repo, cast(DatasetConverter, converter), path, reader.schema, 0, options
            )
            return replace(_converted(*written, reader.schema), restore=converter.restore)
        schema = json.dumps(lance.schema_to_json(reader.schema), sort_keys=True)
        if previous is not None and row_reuse.eligible(repo, previous, schema):
            converted = _write_reusing(repo, reader, previous)
        else:
            converted = _write_table(repo, reader, reader.schema, first_id=0)
        return replace(converted, restore=converter.restore)
    return _write_model(repo, cast(ModelConverter, converter), path, previous, donors, options)


def _write_model(
    repo: Repo,
    converter: ModelConverter,
    path: Path,
    previous: Manifest | None,
    donors: list[Manifest],
    options: ReadOptions,
) -> _Converted:
    source = converter.read(path, options)
    # Rows hold tensors first, then side files, then chunks: the order the manifest lists them.
    tensors = [t for t in source.tensors if not (t.is_file or t.is_chunk)]
    tensors += [t for t in source.tensors if t.is_file] + [t for t in source.tensors if t.is_chunk]
    sums = tensor_table.digests(tensors)
    if previous is not None and chunk_reuse.eligible(repo, tensors, previous):
        with repo.cache.staging(".lance") as stage:
            reused = chunk_reuse.write(repo, tensors, sums, previous, stage)
            written = repo.cache.ingest(stage, staged_files(stage)) if reused else []
        if reused is not None:
            return _Converted(
                fragments=reused.fragments,
                files=_joined(reused.kept, written),
                new_bytes=sum(f.size for f in written),
                tensors=reused.tensors,
                schema=tensor_table.schema_json(),
                restore=source.restore,
                restore_info=source.restore_info,
                info=tuple(sorted(converter.describe(source).items())),
            )
    reusable = tensor_table.reusable_fragments(donors, repo.cache.has)
    fragments: list[Fragment] = []
    files: dict[str, FileEntry] = {}
    infos: list[TensorInfo] = []
    total = sum(len(t.data) for t in tensors)
    with repo.cache.staging(".lance") as stage, bar(f"convert {path.name}", total) as advance:
        for fragment_id, group in enumerate(tensor_table.plan_groups(tensors, sums)):
            group_infos = [
                TensorInfo(
                    tensors[i].name, tensors[i].shape, tensors[i].dtype, fragment_id, sums[i]
                )
                for i in group
            ]
            old = reusable.get(tensor_table.group_key(group_infos))
            if old is not None:
                metadata = old[0].metadata
                files.update({f.path: f for f in old[1]})
            else:
                metadata = tensor_table.write_group(
                    stage, [tensors[i] for i in group], [sums[i] for i in group]
                )
            rows = len(group)
            fragments.append(
                Fragment(fragment_id, rows, tensor_table.renumber(metadata, fragment_id))
            )
            infos.extend(group_infos)
            advance(sum(len(tensors[i].data) for i in group))
        new_files = repo.cache.ingest(stage, staged_files(stage))
    files.update({f.path: f for f in new_files})
    return _Converted(
        fragments=tuple(fragments),
        files=tuple(sorted(files.values(), key=lambda f: f.path)),
        new_bytes=sum(f.size for f in new_files),
        tensors=tuple(infos),
        schema=tensor_table.schema_json(),
        restore=source.restore,
        restore_info=source.restore_info,
        info=tuple(sorted(converter.describe(source).items())),
    )


def _write_table(
    repo: Repo, reader: pa.RecordBatchReader, schema: pa.Schema, first_id: int
) -> _Converted:
    with repo.cache.staging(".lance") as stage:
        fragments = numbered(stage_fragments(reader, stage, schema), first_id)
        files = repo.cache.ingest(stage, staged_files(stage))
    return _converted(fragments, files, schema)


def stage_fragments(reader: pa.RecordBatchReader, stage: Path, schema: pa.Schema) -> list[str]:
    """Write the rows of ``reader`` as Lance data files under ``stage/data``; the metadata JSON
    of each fragment written, in row order. The converter's own error when a batch fails."""
    guarded, errors = _keep_errors(reader)
    try:
        written = write_fragments(guarded, str(stage), schema=schema, mode="create")
    except OSError:
        # Lance wraps what the batch generator raised; the converter's own error is the
        # one-line message the user needs.
        if errors:
            raise errors[0] from None
        raise
    return [json.dumps(meta.to_json()) for meta in written]


def numbered(metadata: list[str], first_id: int) -> list[Fragment]:
    """Fragments of the metadata JSON ``stage_fragments`` returned, numbered from ``first_id``."""
    fragments = []
    for n, text in enumerate(metadata):
        rows = int(json.loads(text)["physical_rows"])
        fragments.append(Fragment(first_id + n, rows, tensor_table.renumber(text, first_id + n)))
    return fragments


def _converted(fragments: list[Fragment], files: list[FileEntry], schema: pa.Schema) -> _Converted:
    return _Converted(
        fragments=tuple(fragments),
        files=tuple(sorted(files, key=lambda f: f.path)),
        new_bytes=sum(f.size for f in files),
        columns=tuple(ColumnInfo(f.name, str(f.type)) for f in schema),
        schema=json.dumps(lance.schema_to_json(schema), sort_keys=True),
        restore="equivalent",
    )


def _write_reusing(repo: Repo, reader: pa.RecordBatchReader, previous: Manifest) -> _Converted:
    """``_write_table`` for a re-added table: rows ``previous`` holds are reused, not written
    again (see ``row_reuse``)."""
    table = reader.read_all()
    old, where = row_reuse.previous_rows(repo, previous)
    runs = row_reuse.plan(row_reuse.row_digests(table), old, where)
    if not row_reuse.worth_it(runs, previous, table.num_rows):
        batches = pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
        return _write_table(repo, batches, table.schema, first_id=0)
    with repo.cache.staging(".lance") as stage:
        reused = row_reuse.write(runs, table, previous, stage, table.schema)
        written = repo.cache.ingest(stage, staged_files(stage))
    return _Converted(
        fragments=reused.fragments,
        files=_joined(reused.kept, written),
        new_bytes=sum(f.size for f in written),
        columns=tuple(ColumnInfo(f.name, str(f.type)) for f in table.schema),
        schema=json.dumps(lance.schema_to_json(table.schema), sort_keys=True),
        restore="equivalent",
    )


def _joined(kept: Sequence[FileEntry], written: Sequence[FileEntry]) -> tuple[FileEntry, ...]:
    """The data files of a version that reuses ``kept`` and wrote ``written``, once each."""
    files = {f.path: f for f in (*kept, *written)}
    return tuple(sorted(files.values(), key=lambda f: f.path))


def _keep_errors(reader: pa.RecordBatchReader) -> tuple[pa.RecordBatchReader, list[MregError]]:
    """``reader`` again, remembering any MregError its batches raise."""
    errors: list[MregError] = []

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        except MregError as error:
            errors.append(error)
            raise

    return pa.RecordBatchReader.from_batches(reader.schema, batches()), errors


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in tree_files(path)) if path.is_dir() else path.stat().st_size


def staged_files(stage: Path) -> list[str]:
    """The data files a Lance write left under ``stage``, relative to it."""
    data = stage / "data"
    if not data.exists():
        return []
    return [p.relative_to(stage).as_posix() for p in data.rglob("*") if p.is_file()]


def _next_fragment_id(manifest: Manifest) -> int:
    return max((f.id for f in manifest.fragments), default=-1) + 1


def _check_same_schema(name: str, batch: str, actual: pa.Schema, expected: pa.Schema) -> None:
    if actual.remove_metadata().equals(expected.remove_metadata()):
        return

    def describe(schema: pa.Schema) -> str:
        return ", ".join(f"{f.name}:{f.type}" for f in schema)

    raise UsageError(
        f"cannot append {batch} to '{name}': its columns ({describe(actual)}) "
        f"differ from the dataset's ({describe(expected)})"
    )


def _check_git_can_ignore(repo: Repo, relpath: str) -> None:
    """Refuse a path that git tracks: ignoring it would not take it out of git's index, and
    every commit would go on carrying its bytes. Or one no .gitignore line can name."""
    ignore_line(PurePosixPath(relpath).name)
    if not repo.git.tracked(relpath):
        return
    recursive = "-r " if (repo.root / relpath).is_dir() else ""
    raise UsageError(
        f"{relpath} is tracked by git; mreg keeps its bytes out of git",
        hint=f"run `git rm {recursive}--cached {relpath}` (the file stays on disk), "
        f"then `mreg add {relpath}`",
    )


def _check_name_free(tracked: dict[str, Manifest], name: str, manifest_rel: str) -> None:
    for other_rel, other in tracked.items():
        if other.name == name and other_rel != manifest_rel:
            raise NameConflict(
                f"the name '{name}' is already used by {other_rel}",
                hint="pass a different --name",
            )


def default_name(path: Path) -> str:
    """An artifact name derived from the file name: ``models/ResNet 18.pth`` -> ``ResNet-18``."""
    stem = path.name.split(".")[0] or path.name
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", stem).strip("-.")
    return cleaned or "artifact"
