"""``mreg add``: convert a file into Lance data in the cache and write its manifest.

An add either finds the source unchanged (its manifest, perhaps with new metadata, stays) or
writes a new version (``lance_data`` converts, while the source is hashed beside it). An
append goes to ``append``; the options are ``AddOptions``, checked when made.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, cast

from mreg import converters
from mreg.converters.base import DatasetConverter, ReadOptions
from mreg.errors import NameConflict, UsageError
from mreg.hashing import path_size
from mreg.repo import append, lance_data
from mreg.repo import manifest as manifests
from mreg.repo.add_options import AddOptions, AddResult, Engine, Mode
from mreg.repo.gitignore import ignore_in_git, ignore_line
from mreg.repo.lance_data import numbered, stage_fragments, staged_files
from mreg.repo.manifest import FileEntry, Manifest, Source
from mreg.repo.source_digest import WorkTreeSource, hash_later, without_skipped

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree

# Imported from here by the Ray engine (mreg.ray.ingest), WorkTree and the CLI.
__all__ = [
    "AddOptions",
    "AddResult",
    "Engine",
    "Mode",
    "add",
    "default_name",
    "numbered",
    "stage_fragments",
    "staged_files",
]


def add(repo: WorkTree, path: str | Path, options: AddOptions) -> AddResult:
    """Track ``path``: convert it to Lance in the cache and write ``PATH.mreg.toml`` beside it
    (or, with ``mode="append"``, add its rows to a dataset). See ``AddOptions``."""
    source_path = _source_path(repo, path, options.mode)
    if not source_path.exists():
        raise UsageError(f"{path}: no such file or folder")
    converter, opaque = _converter(source_path, options.format)
    if options.kind and options.kind != converter.kind:
        raise UsageError(
            f"{source_path.name} is a {converter.kind} ({converter.format}), not a {options.kind}"
        )
    repo.cache.tmp.mkdir(parents=True, exist_ok=True)
    if options.engine is not None and converter.kind != "dataset":
        raise UsageError(f"{source_path.name} is a model: only datasets convert on an engine")
    read = ReadOptions(skip_bad=options.skip_bad, scratch=repo.cache.tmp)
    dataset = None
    if options.mode == "append":
        dataset = append.target(repo, source_path, converter, options.name)
    if dataset is not None:
        batch = cast(DatasetConverter, converter)
        result = append.append(repo, source_path, batch, dataset, options, read)
    else:
        result = _overwrite(repo, source_path, converter, options, read)
    # Its digest was hashed above: checkout may replace these bytes, the cache has them.
    artifact_rel = result.manifest_path.removesuffix(manifests.SUFFIX)
    repo.state.remember_held(artifact_rel, result.manifest, result.manifest.source.sha256)
    return replace(result, skipped=tuple(read.skipped), opaque=opaque)


def _converter(source_path: Path, format: str | None) -> tuple[converters.Converter, str]:
    """The converter of ``format``, else of what the source is; and why the source is tracked
    as opaque bytes ("" for a format mreg reads)."""
    converter = converters.get(format) if format else converters.detect(source_path)
    if converter.format not in (converters.OPAQUE_FILE, converters.OPAQUE_DIR):
        return converter, ""
    return converter, f"--format {format}" if format else converters.opaque_reason(source_path)


def _source_path(repo: WorkTree, path: str | Path, mode: Mode) -> Path:
    """The source, made absolute. An append only reads its batch, so the batch may lie outside
    the work tree; whatever becomes an artifact must lie inside it."""
    absolute = Path(path).absolute()
    if mode == "append" and not absolute.resolve().is_relative_to(repo.root):
        return absolute.resolve()
    return repo.path_in_work_tree(path)


def _overwrite(
    repo: WorkTree,
    source_path: Path,
    converter: converters.Converter,
    options: AddOptions,
    read: ReadOptions,
) -> AddResult:
    """The source as the artifact's next version, or its current one when it is unchanged."""
    relpath = repo.relpath(source_path)
    # Parsed once: every manifest is needed for the name check too.
    tracked = repo.manifests()
    previous = tracked.get(relpath + manifests.SUFFIX)
    name = options.name or (previous.name if previous else _derived_name(source_path))
    _check_name_free(tracked, name, relpath + manifests.SUFFIX)
    companions = tuple(converter.companions(source_path))
    folder = PurePosixPath(relpath).parent
    for rel in (relpath, *((folder / c).as_posix() for c in companions)):
        _check_git_can_ignore(repo, rel)
    size = path_size(source_path)
    size += sum((source_path.parent / c).stat().st_size for c in companions)
    sha: str | None = None
    if previous and previous.source.size == size and previous.source.format == converter.format:
        sha = repo.workspace_digest(relpath, companions) or ""  # perhaps unchanged: check first
    source = WorkTreeSource(source_path, relpath, name, companions, size, sha)
    if previous and _unchanged(repo, previous, source):
        return _same_version(repo, previous, source.manifest_rel, options)
    return _new_version(repo, converter, source, tracked, options, read)


def _unchanged(repo: WorkTree, previous: Manifest, source: WorkTreeSource) -> bool:
    """Whether ``previous`` already records this source under its name, its data cached."""
    return (
        source.sha256 is not None
        and previous.name == source.name
        and previous.source.sha256 == source.sha256
        and previous.source.companions == source.companions
        and not repo.cache.missing(previous.files)
    )


def _same_version(
    repo: WorkTree, previous: Manifest, manifest_rel: str, options: AddOptions
) -> AddResult:
    """The fast path: nothing converted; only new metadata or a new source URL are written."""
    updated = (
        replace(previous, meta=dict(sorted(options.meta.items())))
        if options.replace_meta
        else previous.with_meta(options.meta)
    )
    if options.source_url and options.source_url != previous.source.url:
        updated = replace(updated, source=replace(updated.source, url=options.source_url))
    if updated != previous:
        manifests.write(repo.root / manifest_rel, updated)
    return AddResult(updated, manifest_rel, changed=updated != previous, new_bytes=0)


def _new_version(
    repo: WorkTree,
    converter: converters.Converter,
    source: WorkTreeSource,
    tracked: dict[str, Manifest],
    options: AddOptions,
    read: ReadOptions,
) -> AddResult:
    """Convert the source into a new version of the artifact, and write its manifest."""
    previous = tracked.get(source.manifest_rel)
    # Unchanged tensors keep the fragments of the previous version, or of another model.
    donors = [m for rel, m in tracked.items() if rel != source.manifest_rel]
    donors = [previous, *donors] if previous else donors
    with ThreadPoolExecutor(1, thread_name_prefix="mreg-source-hash") as hasher:
        hashed = hash_later(repo, converter, source, options.engine, hasher)
        converted = lance_data.convert(
            repo, converter, source.path, previous, donors, read, options.engine
        )
        sha, files = hashed()
    sha, size, files = without_skipped(source, sha, files, read.skipped)
    kept_meta = {} if options.replace_meta or previous is None else previous.meta
    manifest = Manifest(
        name=source.name,
        kind=converter.kind,  # type: ignore[arg-type]
        path=source.path.name,
        source=Source(
            converter.format,
            size,
            sha,
            converted.restore,
            converted.restore_info,
            url=options.source_url,
            companions=source.companions,
            files=tuple(FileEntry(*f) for f in files),
        ),
        rows=sum(f.rows for f in converted.fragments),
        schema=converted.schema,
        fragments=converted.fragments,
        files=converted.files,
        columns=converted.columns,
        tensors=converted.tensors,
        meta=dict(sorted({**kept_meta, **options.meta}.items())),
        info=dict(converted.info),
    )
    return _commit(repo, manifest, source.manifest_rel, converted.new_bytes)


def _commit(repo: WorkTree, manifest: Manifest, manifest_rel: str, new_bytes: int) -> AddResult:
    manifests.write(repo.root / manifest_rel, manifest)
    artifact_rel = manifest_rel.removesuffix(manifests.SUFFIX)
    ignore_in_git(repo.root, artifact_rel)
    folder = PurePosixPath(artifact_rel).parent
    for companion in manifest.source.companions:
        ignore_in_git(repo.root, (folder / companion).as_posix())
    return AddResult(manifest, manifest_rel, changed=True, new_bytes=new_bytes)


def _check_git_can_ignore(repo: WorkTree, relpath: str) -> None:
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


def _derived_name(path: Path) -> str:
    # A file name may clean to no valid name (``_x.csv`` -> ``_x``): say so, as for --name.
    return manifests.check_name(default_name(path))
