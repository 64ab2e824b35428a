"""Ray ingest benchmark: ``mreg add`` on this machine against ``mreg add --engine ray``.

    python bench/ray_ingest.py [--images 20000] [--rows 1000000] [--workers 1,2]
                               [--fragments 10000] [--repeat 1] [--out PATH] [--keep]

Three inputs, each added by every contender in a fresh git repo with ``mreg init``:

* ``images``: ``--images`` PNG files (32x32 RGB, ~3.1 KiB each, 10 class sub-folders, made as
  bench/formats.py makes them);
* ``table``: a folder of ``--parquet-files`` Parquet files holding ``--rows`` rows in all (an
  int64 id, a float64 and a short string, as tests/test_ray_engine.py makes them);
* ``tiny``: 20 PNG files: the fixed cost of an add, which the per-worker rate leaves out.

Contenders: ``local`` (``mreg add NAME``), and for each N of ``--workers``, a local Ray cluster of
N CPUs started in this process (``ray.init``, timed on its own as ``start``), then
``mreg add NAME --engine ray --address GCS --workers N`` (timed as ``add``: the command connects,
starts its job's workers, whose tasks convert and hash their shards, moves the files into the
cache and writes the manifest; no remote is set, so the files go to the cache).
Every add must give the rows of the local add, in the same order (a digest of the whole table).

Then the manifest: its size for each add, and for a manifest of ``--fragments`` fragments: the
images' Ray manifest with its ``[lance]`` part replaced by ``--fragments`` real fragments (one
row each, written by Lance's ``write_fragments`` as a worker writes them, hashed with mreg's
hashing), printed with mreg's own manifest writer. See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import shutil
import statistics
import sys
import time
import tomllib
import warnings
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core
from core import BenchError, log
from formats import IMAGE_CLASSES, make_images

ROOT = core.ROOT
CASES = ("images", "table", "tiny")  # each also the input folder's name in every repo
# A few images: what a Ray add costs whatever its size (connect, start the job's workers).
TINY_IMAGES = 2 * 10
PROJECT_IMAGES = 10_000_000
PROJECT_NODES = 16
# Walks of the source folder the driver of a Ray add makes (see driver_walk_s).
DRIVER_WALKS = 4
PROJECT_WORKERS_PER_NODE = (1, 8)
# Where a single file's diff stops loading on a large code host (GitHub: 20,000 lines or
# 500 KB; 400 lines and 20 KB load by themselves).
REVIEW_LINES = 20_000
REVIEW_BYTES = 500_000


@dataclass
class Add:
    """One contender's add of one case; ``start_s`` is the Ray cluster's start (None: local)."""

    case: str
    contender: str
    workers: int
    add_s: float
    start_s: float | None
    rows: int
    digest: str
    manifest: dict[str, int]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.add_s


# -- inputs ---------------------------------------------------------------------------------


def make_table_dir(folder: Path, rows: int, files: int) -> None:
    """``rows`` rows over ``files`` Parquet files: an int64 id, a float64, a short string."""
    folder.mkdir(parents=True)
    bounds = np.linspace(0, rows, files + 1, dtype=np.int64)
    for n in range(files):
        ids = np.arange(bounds[n], bounds[n + 1], dtype=np.int64)
        names = pa.array([f"row-{i}" for i in ids.tolist()])
        table = pa.table({"id": ids, "value": ids * 0.5, "name": names})
        pq.write_table(table, folder / f"part-{n:03d}.parquet")


def make_inputs(work: Path, args: argparse.Namespace) -> dict[str, Path]:
    inputs = work / "inputs"
    shutil.rmtree(inputs, ignore_errors=True)
    log(f"writing {args.images:,} PNG images in {IMAGE_CLASSES} classes")
    make_images(inputs / "images", args.images, seed=0)
    log(f"writing {args.rows:,} rows in {args.parquet_files} Parquet files")
    make_table_dir(inputs / "table", args.rows, args.parquet_files)
    make_images(inputs / "tiny", TINY_IMAGES, seed=1)
    return {case: inputs / case for case in CASES}


# -- one add --------------------------------------------------------------------------------


@dataclass
class Bench:
    work: Path
    env: dict[str, str]
    mreg: str
    keep: bool
    # Each add's manifest (by run label) in the last round: the base of the large manifest.
    manifests: dict[str, str] = field(default_factory=dict)


def fresh_repo(work: Path, label: str, env: dict[str, str], mreg: str) -> Path:
    """An empty git work tree with ``mreg init``."""
    repo = work / "runs" / label
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    core.run(["git", "init", "-q"], repo, env)
    core.run([mreg, "init"], repo, env)
    return repo


def table_digest(repo: Path, name: str) -> tuple[int, str]:
    """Rows and a digest of the whole table as mreg reads it back (the order counts)."""
    import mreg

    table = mreg.open(name, repo=repo).to_table().combine_chunks()
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return table.num_rows, hashlib.sha256(sink.getvalue()).hexdigest()[:16]


def manifest_stats(text: str) -> dict[str, int]:
    """Size of a manifest, and the lines of its three long lists."""
    doc = tomllib.loads(text)
    return {
        "bytes": len(text.encode()),
        "lines": text.count("\n"),
        "compressed_bytes": len(zlib.compress(text.encode(), 6)),
        "source_files": len(doc["source"].get("files", [])),
        "fragments": len(doc["lance"]["fragments"]),
        "lance_files": len(doc["lance"]["files"]),
    }


def add_once(
    bench: Bench,
    case: str,
    source: Path,
    workers: int,
    extra: list[str],
    start_s: float | None,
    reach: dict[str, str] | None = None,
) -> Add:
    """Copy ``source`` into a fresh repo (not timed), then time ``mreg add`` of it (with
    ``reach`` added to the environment: how to reach the Ray cluster)."""
    contender = f"ray, {workers} worker{'s' if workers > 1 else ''}" if workers else "local"
    label = f"{case}-{'ray' + str(workers) if workers else 'local'}"
    repo = fresh_repo(bench.work, label, bench.env, bench.mreg)
    shutil.copytree(source, repo / source.name)
    log(f"{case}: {contender}: mreg add")
    env = {**bench.env, **(reach or {})}
    add_s, _ = core.timed([bench.mreg, "add", source.name, *extra], repo, env)
    rows, digest = table_digest(repo, source.name)
    text = (repo / f"{source.name}.mreg.toml").read_text()
    bench.manifests[label] = text
    if not bench.keep:
        shutil.rmtree(repo, ignore_errors=True)
    return Add(case, contender, workers, add_s, start_s, rows, digest, manifest_stats(text))


@contextmanager
def ray_cluster(workers: int, env: dict[str, str]) -> Iterator[tuple[str, dict[str, str], float]]:
    """A local Ray cluster of ``workers`` CPUs, started as tests/test_ray_engine.py starts one:
    its address, the environment a command needs to reach it (the ``RAY_AUTH_MODE`` that
    ``ray.init`` sets: without it, the cluster refuses the command's connection) and the seconds
    ``ray.init`` took. Shut down (its processes only) after."""
    import ray

    # The raylet starts every worker with this process's environment: the snapshot's mreg.
    os.environ.update({k: env[k] for k in ("PYTHONPATH", "RAY_USAGE_STATS_ENABLED")})
    core.settle()
    start = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    start_s = time.perf_counter() - start
    try:
        reach = {k: v for k, v in os.environ.items() if k.startswith("RAY_")}
        yield ray.get_runtime_context().gcs_address, reach, start_s
    finally:
        ray.shutdown()


def run_round(bench: Bench, inputs: dict[str, Path], workers: list[int]) -> list[Add]:
    adds = [add_once(bench, case, source, 0, [], None) for case, source in inputs.items()]
    for count in workers:
        log(f"starting a local Ray cluster of {count} CPU(s)")
        with ray_cluster(count, bench.env) as (address, reach, start_s):
            extra = ["--engine", "ray", "--address", address, "--workers", str(count)]
            for case, source in inputs.items():
                adds.append(add_once(bench, case, source, count, extra, start_s, reach))
    return adds


def check_same_rows(adds: list[Add]) -> None:
    """Every contender's add of a case holds the local add's rows, in the same order."""
    for case in CASES:
        local = next(a for a in adds if a.case == case and a.workers == 0)
        for add in adds:
            if add.case == case and (add.rows, add.digest) != (local.rows, local.digest):
                raise BenchError(
                    f"{case}: {add.contender} gave {add.rows:,} rows (digest {add.digest}), "
                    f"the local add {local.rows:,} (digest {local.digest})"
                )


def median_adds(rounds: list[list[Add]]) -> list[Add]:
    """Per case and contender, the median add and start times over the rounds."""
    merged = []
    for n, last in enumerate(rounds[-1]):
        each = [r[n] for r in rounds]
        starts = [a.start_s for a in each if a.start_s is not None]
        merged.append(
            replace(
                last,
                add_s=statistics.median(a.add_s for a in each),
                start_s=statistics.median(starts) if starts else None,
            )
        )
    return merged


# -- the manifest at many fragments ---------------------------------------------------------


def many_fragments(base_text: str, images: Path, fragments: int, stage: Path) -> dict[str, Any]:
    """The images' manifest with ``fragments`` real fragments in its ``[lance]`` part.

    A worker writes its shard with ``lance.fragment.write_fragments`` and hashes the files; this
    does the same with one row per fragment (``max_rows_per_file=1``), so that 10,000 fragments
    take seconds instead of 10,000 Ray tasks. A fragment's metadata JSON and its file's line do
    not depend on its row count but for a few digits (``physical_rows``, ``file_size_bytes``).
    """
    from lance.fragment import write_fragments

    from mreg.converters.base import ReadOptions
    from mreg.converters.images import ImageFolderConverter
    from mreg.hashing import sha256_files
    from mreg.ray.ingest import SHARD_BYTES
    from mreg.repo import manifest as manifests
    from mreg.repo.add import numbered, staged_files
    from mreg.repo.manifest import FileEntry

    base = manifests.loads(base_text, "images")
    table = ImageFolderConverter().read(images, ReadOptions(scratch=stage.parent)).read_all()
    rows = table.take(pa.array(np.arange(fragments) % table.num_rows))
    shutil.rmtree(stage, ignore_errors=True)
    written = write_fragments(rows, str(stage), schema=table.schema, max_rows_per_file=1)
    relpaths = sorted(staged_files(stage))
    digests = sha256_files([stage / relpath for relpath in relpaths])
    files = tuple(
        FileEntry(relpath, (stage / relpath).stat().st_size, digest)
        for relpath, digest in zip(relpaths, digests, strict=True)
    )
    metadata = [json.dumps(meta.to_json()) for meta in written]
    big = replace(base, rows=fragments, fragments=tuple(numbered(metadata, 0)), files=files)
    start = time.perf_counter()
    text = manifests.dumps(big)
    dumps_s = time.perf_counter() - start
    start = time.perf_counter()
    manifests.loads(text, "many fragments")
    loads_s = time.perf_counter() - start
    lean = manifests.dumps(replace(big, source=replace(big.source, files=())))
    base_lean = manifests.dumps(replace(base, source=replace(base.source, files=())))
    shutil.rmtree(stage, ignore_errors=True)
    return {
        "with_source_files": manifest_stats(text),
        "without_source_files": manifest_stats(lean),
        "base_without_source_files": manifest_stats(base_lean),
        "shard_bytes": SHARD_BYTES,
        "dumps_s": dumps_s,
        "loads_s": loads_s,
    }


def per_line(text_bytes: int, lines: int) -> float:
    return text_bytes / lines if lines else 0.0


def driver_walk_s(images: Path) -> float:
    """Seconds the driver spends on one walk of the source folder with a stat of every file
    (page cache warm): it reads no source byte (the tasks hash what they read), but walks the
    folder DRIVER_WALKS times (its size, the converter's listing for the schema, the shard plan,
    the ``[source] files`` listing the tasks' digests fill in)."""
    from mreg.hashing import tree_files

    start = time.perf_counter()
    for path in tree_files(images):
        path.stat()
    return time.perf_counter() - start


# -- report ---------------------------------------------------------------------------------


def print_table(adds: list[Add]) -> list[dict[str, Any]]:
    header = (
        f"{'case':<8}{'contender':<16}{'rows':>11}{'start s':>9}{'add s':>8}{'rows/s':>10}"
        f"{'ray/local':>11}{'manifest':>11}{'lines':>8}{'frags':>7}"
    )
    print()
    print(header)
    print("-" * len(header))
    table = []
    for add in adds:
        local = next(a for a in adds if a.case == add.case and a.workers == 0)
        ratio = add.add_s / local.add_s
        start = "-" if add.start_s is None else f"{add.start_s:.2f}"
        m = add.manifest
        print(
            f"{add.case:<8}{add.contender:<16}{add.rows:>11,}{start:>9}{add.add_s:>8.2f}"
            f"{add.rows_per_s:>10,.0f}{ratio:>10.2f}x{core.human_bytes(m['bytes']):>11}"
            f"{m['lines']:>8,}{m['fragments']:>7,}"
        )
        table.append({**asdict(add), "rows_per_s": add.rows_per_s, "ray_over_local": ratio})
    print(
        "\nstart: ray.init of a local cluster (once per worker count, shared by every case); "
        "add: the whole `mreg add` command; ray/local: add time over the local add's"
    )
    return table


def overheads(adds: list[Add]) -> list[dict[str, Any]]:
    """Ray at 1 worker against local: seconds and share added, cluster start apart."""
    found = []
    for case in CASES:
        local = next(a for a in adds if a.case == case and a.workers == 0)
        one = next((a for a in adds if a.case == case and a.workers == 1), None)
        if one is None:
            continue
        extra = one.add_s - local.add_s
        found.append(
            {"case": case, "extra_s": extra, "share": extra / local.add_s, "start_s": one.start_s}
        )
        print(
            f"{case}: Ray at 1 worker adds {extra:+.2f} s ({extra / local.add_s:+.0%}) to the "
            f"local add, plus {one.start_s:.2f} s to start the cluster"
        )
    return found


def projection(adds: list[Add], walk_s: float, image_bytes: int) -> dict[str, Any]:
    """Time for PROJECT_IMAGES images on PROJECT_NODES nodes from the rate of one Ray worker
    (its add less the tiny add's: what converting and hashing cost beyond the fixed cost of a
    Ray add), and the driver's own walks of the source folder, which do not spread."""
    one = next((a for a in adds if a.case == "images" and a.workers == 1), None)
    tiny = next((a for a in adds if a.case == "tiny" and a.workers == 1), None)
    if one is None or tiny is None or one.add_s <= tiny.add_s:
        print("\nno projection: the images' Ray add took no longer than the tiny one's")
        return {}
    rate = (one.rows - tiny.rows) / (one.add_s - tiny.add_s)
    driver_s = DRIVER_WALKS * walk_s / one.rows * PROJECT_IMAGES
    found: dict[str, Any] = {
        "per_worker_img_s": rate,
        "fixed_s": tiny.add_s,
        "driver_walk_img_s": one.rows / walk_s,
        "driver_walks_s": driver_s,
        "image_bytes": image_bytes / one.rows,
    }
    print(
        f"\nprojection, {PROJECT_IMAGES:,} images: one worker converts and hashes {rate:,.0f} "
        f"img/s (({one.rows:,} - {tiny.rows}) images / ({one.add_s:.2f} - {tiny.add_s:.2f}) s, "
        f"the tiny add being a Ray add's fixed cost); the driver walks the source alone, "
        f"{DRIVER_WALKS} times at {one.rows / walk_s:,.0f} img/s: {driver_s:,.0f} s for all"
    )
    for per_node in PROJECT_WORKERS_PER_NODE:
        workers = PROJECT_NODES * per_node
        convert_s = PROJECT_IMAGES / (workers * rate)
        found[f"convert_s_{per_node}_per_node"] = convert_s
        print(
            f"  {PROJECT_NODES} nodes x {per_node} worker(s) = {workers} workers: "
            f"{PROJECT_IMAGES:,} / ({workers} x {rate:,.0f}) = {convert_s:,.0f} s converting, "
            f"{driver_s + convert_s:,.0f} s with the driver's walks before and after it"
        )
    return found


def print_manifests(probe: dict[str, Any], fragments: int, images: int, image_bytes: int) -> None:
    full, lean, base = (
        probe["with_source_files"],
        probe["without_source_files"],
        probe["base_without_source_files"],
    )
    # Bytes each list adds per entry: the two manifests' difference, and the lean one's growth
    # over the images' own manifest without source files.
    source_line = per_line(full["bytes"] - lean["bytes"], full["source_files"])
    per_fragment = per_line(lean["bytes"] - base["bytes"], lean["fragments"] - base["fragments"])
    print(
        f"\nmanifest with {fragments:,} fragments (and the {images:,} images' [source] files): "
        f"{core.human_bytes(full['bytes'])} ({full['bytes']:,} B), {full['lines']:,} lines, "
        f"{core.human_bytes(full['compressed_bytes'])} zlib-compressed as git stores it; "
        f"written in {probe['dumps_s']:.2f} s, parsed in {probe['loads_s']:.2f} s"
    )
    print(
        f"  without [source] files: {core.human_bytes(lean['bytes'])} ({lean['bytes']:,} B), "
        f"{lean['lines']:,} lines, {core.human_bytes(lean['compressed_bytes'])} compressed; "
        f"{per_fragment:,.0f} B per fragment (its line and its data file's line)"
    )
    reviewable = lean["lines"] <= REVIEW_LINES and lean["bytes"] <= REVIEW_BYTES
    print(
        f"  a diff shows it in full: {'yes' if reviewable else 'no'} "
        f"(limit {REVIEW_LINES:,} lines / {REVIEW_BYTES:,} B per file)"
    )
    average = image_bytes / images
    shard_bytes = probe["shard_bytes"]
    shards = -(-PROJECT_IMAGES * int(average) // shard_bytes)
    print(
        f"  {PROJECT_IMAGES:,} images of {average:,.0f} B: {shards:,} shards of "
        f"{shard_bytes >> 20} MiB, fragments ~{core.human_bytes(int(shards * per_fragment))}; "
        f"[source] files ~{source_line:,.0f} B per image: "
        f"{core.human_bytes(int(source_line * PROJECT_IMAGES))} and {PROJECT_IMAGES:,} lines"
    )


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="PNG images to add")
    parser.add_argument("--rows", type=int, default=1_000_000, help="Parquet rows to add")
    parser.add_argument("--parquet-files", type=int, default=8, help="files holding the rows")
    parser.add_argument(
        "--workers", default="1,2", help="Ray worker counts, comma-separated (one cluster each)"
    )
    parser.add_argument(
        "--fragments", type=int, default=10000, help="fragments of the large manifest"
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table: medians")
    parser.add_argument("--keep", action="store_true", help="keep the inputs and repos")
    parser.add_argument(
        "--recycle-gib", type=float, default=2.0, help="see core.py's --recycle-gib"
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / ".work" / "ray")
    parser.add_argument(
        "--out", type=Path, default=ROOT / "bench" / ".work" / "ray-ingest-results.json"
    )
    args = parser.parse_args(argv)
    args.workers = [int(n) for n in args.workers.split(",") if n.strip()]
    core.RECYCLE_BYTES = int(args.recycle_gib * (1 << 30)) // mmap.PAGESIZE * mmap.PAGESIZE
    return args


def ray_version() -> str:
    from importlib import metadata

    return metadata.version("ray")


def prepare(work: Path) -> tuple[dict[str, str], str]:
    """The environment of every command (mreg from a snapshot of this checkout), and mreg."""
    snapshot = core.snapshot_mreg(work)
    env = core.tool_env(snapshot)
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    core.check_snapshot(env, snapshot)
    # This process reads the tables back and writes the large manifest with the same mreg.
    sys.path.insert(0, str(snapshot))
    return env, core.mreg_binary()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    # ray.init forks its daemons after this process has loaded Lance; they never run Lance.
    warnings.filterwarnings("ignore", message="lance is not fork-safe")
    meter = core.CpuMeter()
    env, mreg = prepare(work)
    bench = Bench(work, env, mreg, args.keep)
    inputs = make_inputs(work, args)
    rounds = []
    try:
        for number in range(1, args.repeat + 1):
            if args.repeat > 1:
                log(f"round {number} of {args.repeat}")
            adds = run_round(bench, inputs, args.workers)
            check_same_rows(adds)
            rounds.append(adds)
        log(f"writing a manifest of {args.fragments:,} fragments")
        base = bench.manifests[f"images-ray{args.workers[-1]}"]
        probe = many_fragments(base, inputs["images"], args.fragments, work / "fragments")
        walk_s = driver_walk_s(inputs["images"])
        image_bytes = sum(p.stat().st_size for p in inputs["images"].rglob("*.png"))
    finally:
        if not args.keep:
            for name in ("inputs", "runs", "mreg-src", "fragments"):
                shutil.rmtree(work / name, ignore_errors=True)
    adds = sorted(median_adds(rounds), key=lambda a: (CASES.index(a.case), a.workers))
    commit = core.run(["git", "rev-parse", "--short", "HEAD"], ROOT, env).strip()
    dirty = core.run(["git", "status", "--porcelain", "mreg"], ROOT, env).strip()
    print(
        f"\nmreg at {commit}{' + local edits' if dirty else ''}, ray {ray_version()}, on "
        f"{os.cpu_count()} cores; CPU used by other work meanwhile: {meter.other_share():.1%} "
        "(Ray's own processes count as other work)"
    )
    print(
        f"{args.images:,} PNG images of 32x32; {args.rows:,} rows in {args.parquet_files} "
        f"Parquet files; rows were checked equal, in order, for every contender"
    )
    table = print_table(adds)
    print()
    extra = overheads(adds)
    project = projection(adds, walk_s, image_bytes)
    print_manifests(probe, args.fragments, args.images, image_bytes)
    path: Path = args.out.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    document = {
        "config": config,
        "table": table,
        "ray_overhead_1_worker": extra,
        "projection": project,
        "many_fragments": probe,
        "rounds": [[asdict(a) for a in r] for r in rounds],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
