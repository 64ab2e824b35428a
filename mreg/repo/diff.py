"""``mreg diff``: what changed between two versions, read from the manifests in git alone."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from mreg import converters
from mreg.converters.base import CHUNK_DTYPE, FILE_DTYPE
from mreg.converters.blob_dir import listed_files
from mreg.repo.manifest import Manifest, TensorInfo

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree

WORKSPACE = "workspace"
METRIC = "metric."  # the registry's [meta] key of each metric


@dataclass(frozen=True)
class Side:
    """The numbers of one version a review compares (``rows`` of a dataset, ``parameters``
    of a model, registered metrics)."""

    size: int
    rows: int
    parameters: int
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class ArtifactChange:
    name: str
    change: str  # "added" | "removed" | "changed"
    kind: str
    details: tuple[str, ...] = ()
    before: Side | None = None
    after: Side | None = None
    tensors_changed: int = 0  # added, or changed in shape, dtype or values
    tensors: int = 0  # in the new version
    changed_parameters: int = 0  # parameters of those tensors


@dataclass(frozen=True)
class Diff:
    old: str
    new: str
    changes: list[ArtifactChange] = field(default_factory=list)


def diff(repo: WorkTree, rev_a: str | None = None, rev_b: str | None = None) -> Diff:
    """Compare ``rev_a`` (default HEAD) with ``rev_b`` (default the work tree)."""
    old_rev = rev_a or "HEAD"
    old = _by_name(repo.manifests_at(old_rev) if repo.git.has_commits() or rev_a else {})
    new = _by_name(repo.manifests_at(rev_b) if rev_b else repo.manifests())
    names = sorted(old.keys() | new.keys())
    only = _tagged_artifacts(repo, rev_a, rev_b)
    if only:
        names = [n for n in names if n in only]
    changes = []
    for name in names:
        before, after = old.get(name), new.get(name)
        if before is None and after is not None:
            changes.append(
                ArtifactChange(name, "added", after.kind, _summary(after), None, _side(after))
            )
        elif after is None and before is not None:
            changes.append(
                ArtifactChange(name, "removed", before.kind, _summary(before), _side(before))
            )
        elif before is not None and after is not None and before != after:
            changes.append(_changed(name, before, after))
    return Diff(old_rev, rev_b or WORKSPACE, changes)


def _changed(name: str, before: Manifest, after: Manifest) -> ArtifactChange:
    changed = _changed_tensors(before, after)
    return ArtifactChange(
        name,
        "changed",
        after.kind,
        _compare(before, after),
        _side(before),
        _side(after),
        tensors_changed=len(changed),
        tensors=len(after.weights),
        changed_parameters=sum(_count(t.shape) for t in changed),
    )


def _side(manifest: Manifest) -> Side:
    metrics = {}
    for key, value in manifest.meta.items():
        if key.startswith(METRIC):
            try:
                metrics[key.removeprefix(METRIC)] = float(value)
            except ValueError:
                continue  # a manifest from anyone: a metric that is no number is left out
    return Side(manifest.source.size, manifest.rows, manifest.parameters, metrics)


def _changed_tensors(before: Manifest, after: Manifest) -> list[TensorInfo]:
    """The weights of ``after`` that ``before`` lacks or holds with another shape, dtype or
    digest (which fragment holds a tensor is no change of it)."""
    old = {t.name: (t.shape, t.dtype, t.digest) for t in before.weights}
    return [t for t in after.weights if old.get(t.name) != (t.shape, t.dtype, t.digest)]


def _count(shape: tuple[int, ...]) -> int:
    total = 1
    for dim in shape:
        total *= dim
    return total


def _tagged_artifacts(repo: WorkTree, *revs: str | None) -> set[str]:
    """Names in version tags among the revisions: ``diff m@v1.0.0 m@v1.1.0`` is about ``m``."""
    names = set()
    for rev in revs:
        if rev and "@" in rev and repo.git.tags(rev):
            names.add(rev.partition("@")[0])
    return names


def _by_name(found: dict[str, Manifest]) -> dict[str, Manifest]:
    return {m.name: m for m in found.values()}


def _summary(manifest: Manifest) -> tuple[str, ...]:
    if manifest.source.format in (converters.OPAQUE_FILE, converters.OPAQUE_DIR):
        files = len(_folder_files(manifest))
        return (
            f"{files} file(s), {manifest.source.size:,} bytes "
            f"in {len(manifest.chunks):,} chunks (opaque)",
        )
    if manifest.kind == "model":
        return (f"{len(manifest.tensors)} tensors, {manifest.parameters:,} parameters",)
    return (f"{manifest.rows:,} rows, {len(manifest.columns)} columns",)


def _compare(before: Manifest, after: Manifest) -> tuple[str, ...]:
    details: list[str] = []
    if before.source.sha256 != after.source.sha256:
        details.append(
            f"source {before.source.format} {before.source.sha256[:12]} -> "
            f"{after.source.format} {after.source.sha256[:12]}"
        )
    listed = _compare_files(before, after)
    details += listed
    details += _compare_tensors(before, after, bool(listed)) if after.kind == "model" else []
    details += _compare_dataset(before, after) if after.kind == "dataset" else []
    details += _compare_fragments(before, after)
    for section, old, new in (("meta", before.meta, after.meta), ("info", before.info, after.info)):
        for key in sorted(old.keys() | new.keys()):
            if old.get(key) != new.get(key):
                details.append(f"{section} {key}: {old.get(key)!r} -> {new.get(key)!r}")
    return tuple(details)


def _folder_files(manifest: Manifest) -> dict[str, tuple[int, str]]:
    """Path in the artifact ("" for a single opaque file) -> (size, sha256) of the files it
    holds, where the manifest records them: opaque bytes, and folders added since mreg lists
    their files ({} otherwise)."""
    if manifest.source.format == converters.OPAQUE_FILE:
        return {"": (manifest.source.size, manifest.source.sha256)}
    if manifest.source.format == converters.OPAQUE_DIR:
        listed = listed_files(manifest.source.restore_info)
        return {f["path"]: (int(f["size"]), f["sha256"]) for f in listed}
    return {f.path: (f.size, f.sha256) for f in manifest.source.files}


def _compare_files(before: Manifest, after: Manifest) -> list[str]:
    """Files added, removed and changed, as DVC's diff lists them (for opaque bytes, how many
    chunks and bytes are new). Nothing when either version does not list its files."""
    old, new = _folder_files(before), _folder_files(after)
    if not old or not new:
        return []

    def shown(rel: str) -> str:
        return f"{after.path}/{rel}" if rel else after.path

    lines = [f"+ file {shown(p)} ({new[p][0]:,} bytes)" for p in new if p not in old]
    lines += [f"- file {shown(p)} ({old[p][0]:,} bytes)" for p in old if p not in new]
    for rel in (p for p in new if p in old and new[p] != old[p]):
        chunks = [c for c in after.chunks if c.name == rel]
        if not chunks:
            lines.append(f"~ file {shown(rel)}: {old[rel][0]:,} -> {new[rel][0]:,} bytes")
            continue
        fresh = _new_chunks([c for c in before.chunks if c.name == rel], chunks)
        lines.append(
            f"~ file {shown(rel)}: {old[rel][0]:,} -> {new[rel][0]:,} bytes, "
            f"{len(fresh)} of {len(chunks)} chunks new ({sum(c.shape[0] for c in fresh):,} bytes)"
        )
    return lines


def _new_chunks(before: list[TensorInfo], after: list[TensorInfo]) -> list[TensorInfo]:
    """The chunks of ``after`` that ``before`` does not hold (as many times)."""
    held = Counter(c.digest for c in before)
    fresh = []
    for chunk in after:
        if held[chunk.digest] > 0:
            held[chunk.digest] -= 1
        else:
            fresh.append(chunk)
    return fresh


def _compare_tensors(before: Manifest, after: Manifest, files_listed: bool) -> list[str]:
    """Tensors added, removed and changed; side files too, unless the folder's files were
    listed already."""
    left_out = (CHUNK_DTYPE, FILE_DTYPE) if files_listed else (CHUNK_DTYPE,)
    old = {t.name: t for t in before.tensors if t.dtype not in left_out}
    new = {t.name: t for t in after.tensors if t.dtype not in left_out}
    lines = [f"+ {_describe(new[n])}" for n in new if n not in old]
    lines += [f"- {_describe(old[n])}" for n in old if n not in new]
    for name in (n for n in new if n in old):
        a, b = old[name], new[name]
        if FILE_DTYPE in (a.dtype, b.dtype):
            if a.digest != b.digest:
                lines.append(f"~ file {name}: content changed")
            continue
        if a.shape != b.shape:
            lines.append(f"~ tensor {name}: shape {list(a.shape)} -> {list(b.shape)}")
        if a.dtype != b.dtype:
            lines.append(f"~ tensor {name}: dtype {a.dtype} -> {b.dtype}")
        if a.digest != b.digest and a.shape == b.shape and a.dtype == b.dtype:
            lines.append(f"~ tensor {name}: values changed ({a.digest[:12]} -> {b.digest[:12]})")
    if before.parameters != after.parameters:
        lines.append(f"parameters {before.parameters:,} -> {after.parameters:,}")
    return lines


def _describe(tensor: TensorInfo) -> str:
    if tensor.dtype == FILE_DTYPE:
        return f"file {tensor.name}"
    return f"tensor {tensor.name} {list(tensor.shape)} {tensor.dtype}"


def _compare_dataset(before: Manifest, after: Manifest) -> list[str]:
    lines = []
    if before.rows != after.rows:
        lines.append(f"rows {before.rows:,} -> {after.rows:,} ({after.rows - before.rows:+,})")
    old = {c.name: c.type for c in before.columns}
    new = {c.name: c.type for c in after.columns}
    lines += [f"+ column {n} {t}" for n, t in new.items() if n not in old]
    lines += [f"- column {n} {t}" for n, t in old.items() if n not in new]
    lines += [f"~ column {n}: {old[n]} -> {t}" for n, t in new.items() if n in old and old[n] != t]
    return lines


def _compare_fragments(before: Manifest, after: Manifest) -> list[str]:
    old = {tuple(f.data_files()): f for f in before.fragments}
    new = {tuple(f.data_files()): f for f in after.fragments}
    added = [f for key, f in new.items() if key not in old]
    removed = [f for key, f in old.items() if key not in new]
    lines = []
    if added:
        lines.append(f"+ {len(added)} fragment(s), {sum(f.rows for f in added):,} rows")
    if removed:
        lines.append(f"- {len(removed)} fragment(s), {sum(f.rows for f in removed):,} rows")
    return lines
