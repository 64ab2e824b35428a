"""Core benchmark: mreg against a raw boto3 transfer and DVC, on a real S3 server (SeaweedFS).

    python bench/core.py [--size-mib 1024] [--rows 20000] [--skip-dvc] [--repeat 1]

Two cases, each pushed and pulled by three contenders, each contender in a fresh bucket:

* ``large``: one safetensors file of ``--size-mib`` MiB of random float32 tensors;
* ``rows``: ``--rows`` rows of ``--blob-kib`` KiB random blobs plus an id, as one Parquet file
  (mreg, raw) and as one file per row in a folder (DVC, and a raw many-objects baseline).

Then two mreg-only checks: appending 1% more rows uploads few bytes, and re-adding an unchanged
file uploads none. See bench/README.md for what every column means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import mmap
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from boto3.s3.transfer import TransferConfig

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, start_seaweed  # noqa: E402

MIB = 1 << 20
COMMAND_TIMEOUT = 3600
RAW_LARGE = TransferConfig(
    multipart_threshold=16 * MIB, multipart_chunksize=16 * MIB, max_concurrency=16
)
RAW_FILE_THREADS = 32
WARMUP_KEY = "bench-warm-up"
WARMUP_PAUSE = 1.0
RECYCLE_BYTES = 2 << 30  # see settle(); core.py's --recycle-gib sets it
SEAWEED_TRIES = 3
GOAL_LARGE_RATIO = 1.3
GOAL_DVC_SPEEDUP = 10.0
GOAL_APPEND_SHARE = 0.02


class BenchError(RuntimeError):
    """A contender's command failed or gave back different data."""


# -- results ------------------------------------------------------------------------------


@dataclass
class Timing:
    """One contender on one case. ``add_s`` is None where there is no add step (raw)."""

    push_s: float
    pull_s: float
    add_s: float | None = None
    stored_bytes: int = 0
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def upload_s(self) -> float:
        """What a user waits for to publish the data: add (hashing, conversion) plus push."""
        return (self.add_s or 0.0) + self.push_s


@dataclass
class Check:
    """An mreg-only check: how many bytes a second push sent, against what was there."""

    add_s: float
    push_s: float
    bytes_before: int
    bytes_uploaded: int
    push_output: str

    @property
    def share(self) -> float:
        return self.bytes_uploaded / self.bytes_before if self.bytes_before else 0.0


@dataclass
class Inputs:
    model: Path
    table: Path
    more: Path
    folder: Path


@dataclass
class Bench:
    """What every contender needs: the server, a work folder, tools, and an environment."""

    server: Seaweed
    work: Path
    env: dict[str, str]
    mreg: str
    dvc: Path | None
    keep: bool
    buckets: int = 0

    def bucket(self, label: str) -> str:
        """A fresh bucket, warmed up: SeaweedFS grows volumes on a bucket's first write, which
        would otherwise land on whichever contender writes first (0.2-1 s seen here)."""
        self.buckets += 1
        name = f"{label}-{self.buckets:02d}"
        self.server.create_bucket(name)
        self.server.client().put_object(Bucket=name, Key=WARMUP_KEY, Body=b"warm-up")
        time.sleep(WARMUP_PAUSE)
        return name

    def folder(self, label: str) -> Path:
        path = self.work / "runs" / f"{label}-{self.buckets:02d}"
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    def done(self, path: Path) -> None:
        if not self.keep:
            shutil.rmtree(path, ignore_errors=True)


# -- helpers --------------------------------------------------------------------------------


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> str:
    """Run a command; its stdout, or BenchError with everything it printed."""
    args = [str(part) for part in command]
    proc = subprocess.run(
        args, cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT
    )
    if proc.returncode != 0:
        raise BenchError(
            f"`{' '.join(args)}` in {cwd} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


def settle() -> None:
    """Make every timed step start from the same state of the machine.

    First flush dirty pages: otherwise a contender pays for writing back what the one before it
    wrote (gigabytes here), and the order of contenders decides the ratios. Then touch and free
    RECYCLE_BYTES of memory: on a VM that hands free memory back to its host (virtio-balloon
    free page reporting, as here), the first touch of a page costs a fault on the host. Writing
    1 GiB took 0.35 s on pages freed moments before and 2.5-3.3 s otherwise, and the raw
    download, timed right after its own upload had freed a gigabyte of buffers, found such
    pages while mreg's pull, timed after a git clone, did not. With this, every step finds
    recycled pages, as on a machine that is busy anyway.
    """
    os.sync()
    if RECYCLE_BYTES:
        pages = mmap.mmap(-1, RECYCLE_BYTES)
        for offset in range(0, RECYCLE_BYTES, mmap.PAGESIZE):
            pages[offset] = 1
        pages.close()


def timed(command: list[str | Path], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    settle()
    start = time.perf_counter()
    output = run(command, cwd, env)
    return time.perf_counter() - start, output


def clock(work: Callable[[], object]) -> float:
    settle()
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(8 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def tool_env(snapshot: Path) -> dict[str, str]:
    """The environment of every command: loopback credentials, no progress bars, no telemetry."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DVC_"))}
    env.update(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        PYTHONPATH=os.pathsep.join(filter(None, [str(snapshot), os.environ.get("PYTHONPATH")])),
        MREG_NO_PROGRESS="1",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="bench",
        GIT_AUTHOR_EMAIL="bench@example.invalid",
        GIT_COMMITTER_NAME="bench",
        GIT_COMMITTER_EMAIL="bench@example.invalid",
    )
    return env


def s3_client(server: Seaweed, pool: int) -> Any:
    return server.client(pool)


def bucket_objects(server: Seaweed, bucket: str) -> dict[str, int]:
    """Every object of the bucket with its size (but the warm-up probe)."""
    sizes: dict[str, int] = {}
    for page in server.client().get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            sizes[item["Key"]] = int(item["Size"])
    sizes.pop(WARMUP_KEY, None)
    return sizes


def uploaded_between(before: dict[str, int], after: dict[str, int]) -> int:
    """Bytes of the objects that are new or changed size between two listings."""
    return sum(size for key, size in after.items() if before.get(key) != size)


def git_commit(repo: Path, env: dict[str, str], message: str) -> None:
    run(["git", "add", "-A"], repo, env)
    run(["git", "commit", "-q", "-m", message], repo, env)


def git_clone(repo: Path, env: dict[str, str]) -> Path:
    clone = repo.parent / "clone"
    run(["git", "clone", "-q", repo, clone], repo.parent, env)
    return clone


def copy_artifact(source: Path, dest: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, dest)
    else:
        shutil.copyfile(source, dest)


def check_same(original: Path, restored: Path) -> None:
    """The pulled artifact holds the data that was pushed."""
    if original.is_dir():
        names = sorted(p.relative_to(original) for p in original.rglob("*") if p.is_file())
        if names != sorted(p.relative_to(restored) for p in restored.rglob("*") if p.is_file()):
            raise BenchError(f"{restored}: other file names than {original}")
        for name in names:
            if (original / name).read_bytes() != (restored / name).read_bytes():
                raise BenchError(f"{restored / name} differs from the original")
    elif original.suffix == ".parquet":
        if not pq.read_table(original).equals(pq.read_table(restored)):
            raise BenchError(f"{restored}: other rows than {original}")
    elif sha256_file(original) != sha256_file(restored):
        raise BenchError(f"{restored}: other bytes than {original}")


def human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB"):
        if value < 1024:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.2f} GiB"


# -- inputs ---------------------------------------------------------------------------------


def make_model(path: Path, size_mib: int, tensors: int, seed: int) -> None:
    """A safetensors file of ``tensors`` random float32 tensors, ``size_mib`` MiB in all."""
    from safetensors.numpy import save_file

    rng = np.random.default_rng(seed)
    columns = 1024
    rows = max(1, size_mib * MIB // tensors // 4 // columns)
    arrays = {
        f"layers.{i:03d}.weight": rng.random((rows, columns), dtype=np.float32)
        for i in range(tensors)
    }
    save_file(arrays, str(path))


def make_table(rows: int, blob_bytes: int, seed: int, first_id: int = 0) -> pa.Table:
    """``rows`` rows: an int64 id and a random binary blob of ``blob_bytes``."""
    rng = np.random.default_rng(seed)
    offsets = np.arange(rows + 1, dtype=np.int32) * blob_bytes
    blobs = pa.Array.from_buffers(
        pa.binary(), rows, [None, pa.py_buffer(offsets), pa.py_buffer(rng.bytes(rows * blob_bytes))]
    )
    ids = pa.array(np.arange(first_id, first_id + rows, dtype=np.int64))
    return pa.table({"id": ids, "blob": blobs})


def write_folder(table: pa.Table, folder: Path) -> None:
    """One file per row, named by its id: the same data as DVC users keep it."""
    folder.mkdir(parents=True)
    for row_id, blob in zip(table["id"].to_pylist(), table["blob"].to_pylist(), strict=True):
        (folder / f"{row_id:06d}.bin").write_bytes(blob)


def make_inputs(folder: Path, args: argparse.Namespace) -> Inputs:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    inputs = Inputs(
        model=folder / "model.safetensors",
        table=folder / "table.parquet",
        more=folder / "more.parquet",
        folder=folder / "rows",
    )
    make_model(inputs.model, args.size_mib, args.tensors, seed=1)
    table = make_table(args.rows, args.blob_kib * 1024, seed=2)
    pq.write_table(table, inputs.table)
    write_folder(table, inputs.folder)
    more = make_table(max(1, args.rows // 100), args.blob_kib * 1024, seed=3, first_id=args.rows)
    pq.write_table(more, inputs.more)
    return inputs


# -- contenders -----------------------------------------------------------------------------


def mreg_repo(bench: Bench, bucket: str, folder: Path) -> Path:
    repo = folder / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo, bench.env)
    run([bench.mreg, "init"], repo, bench.env)
    url = f"s3://{bucket}/prefix"
    endpoint = ["--endpoint-url", bench.server.endpoint, "--region", "us-east-1"]
    run([bench.mreg, "remote", "add", "s3", url, "--default", *endpoint], repo, bench.env)
    return repo


def mreg_push(bench: Bench, repo: Path, add: list[str]) -> tuple[float, float, str]:
    """Time ``mreg add ...`` and ``mreg push``; returns both and what push printed."""
    add_s, _ = timed([bench.mreg, "add", *add], repo, bench.env)
    push_s, output = timed([bench.mreg, "push"], repo, bench.env)
    return add_s, push_s, output.strip()


def mreg_second_push(bench: Bench, repo: Path, bucket: str, add: list[str]) -> Check:
    """Add again (a re-add or an append), push, and measure what reached the bucket."""
    before = bucket_objects(bench.server, bucket)
    add_s, push_s, output = mreg_push(bench, repo, add)
    after = bucket_objects(bench.server, bucket)
    return Check(add_s, push_s, sum(before.values()), uploaded_between(before, after), output)


def mreg_split_pull(bench: Bench, repo: Path) -> dict[str, str]:
    """Where pull's time goes: ``mreg fetch`` then ``mreg checkout`` in another fresh clone."""
    clone = repo.parent / "clone-split"
    run(["git", "clone", "-q", repo, clone], repo.parent, bench.env)
    fetch_s, _ = timed([bench.mreg, "fetch"], clone, bench.env)
    checkout_s, _ = timed([bench.mreg, "checkout"], clone, bench.env)
    return {"fetch_s": f"{fetch_s:.3f}", "checkout_s": f"{checkout_s:.3f}"}


def mreg_case(bench: Bench, case: str, artifact: Path, more: Path | None) -> tuple[Timing, Check]:
    """mreg add + push from one repo, pull into a clone; then the case's second push."""
    bucket = bench.bucket(f"mreg-{case}")
    folder = bench.folder(f"mreg-{case}")
    repo = mreg_repo(bench, bucket, folder)
    copy_artifact(artifact, repo / artifact.name)
    add_s, push_s, pushed = mreg_push(bench, repo, [artifact.name])
    git_commit(repo, bench.env, f"add {artifact.name}")
    stored = sum(bucket_objects(bench.server, bucket).values())
    clone = git_clone(repo, bench.env)
    pull_s, _ = timed([bench.mreg, "pull"], clone, bench.env)
    check_same(artifact, clone / artifact.name)
    split = mreg_split_pull(bench, repo)
    if more is None:  # the same file again: nothing new may travel
        check = mreg_second_push(bench, repo, bucket, [artifact.name])
    else:  # 1% more rows appended to the table
        shutil.copyfile(more, repo / more.name)
        name = artifact.name.split(".")[0]
        check = mreg_second_push(
            bench, repo, bucket, [more.name, "--name", name, "--mode", "append"]
        )
    bench.done(folder)
    timing = Timing(push_s, pull_s, add_s, stored, {"push": pushed, **split})
    return timing, check


def raw_large(bench: Bench, case: str, artifact: Path) -> Timing:
    """boto3 multipart upload and download of one file: the floor for any tool."""
    bucket = bench.bucket(f"raw-{case}")
    folder = bench.folder(f"raw-{case}")
    client = s3_client(bench.server, RAW_FILE_THREADS)
    key = f"raw/{artifact.name}"
    dest = folder / artifact.name
    push_s = clock(lambda: client.upload_file(str(artifact), bucket, key, Config=RAW_LARGE))
    pull_s = clock(lambda: client.download_file(bucket, key, str(dest), Config=RAW_LARGE))
    check_same(artifact, dest)
    dest.unlink()
    command_s, _ = timed(raw_download_command(bench, bucket, key, dest), folder, bench.env)
    check_same(artifact, dest)
    bench.done(folder)
    notes = {"command_pull_s": f"{command_s:.3f}"}
    return Timing(push_s, pull_s, stored_bytes=artifact.stat().st_size, notes=notes)


def raw_download_command(bench: Bench, bucket: str, key: str, dest: Path) -> list[str | Path]:
    """The same raw download as a command of its own: a fresh Python that imports boto3, makes
    a client and downloads (what an `aws s3 cp` user waits for; mreg pull is a command too)."""
    code = (
        "import sys, boto3\n"
        "from boto3.s3.transfer import TransferConfig\n"
        "from botocore.config import Config\n"
        "client = boto3.client('s3', endpoint_url=sys.argv[1], config=Config("
        f"max_pool_connections={RAW_FILE_THREADS}, s3={{'addressing_style': 'path'}}))\n"
        "client.download_file(sys.argv[2], sys.argv[3], sys.argv[4], Config=TransferConfig("
        f"multipart_threshold={RAW_LARGE.multipart_threshold}, "
        f"multipart_chunksize={RAW_LARGE.multipart_chunksize}, "
        f"max_concurrency={RAW_LARGE.max_concurrency}))\n"
    )
    return [sys.executable, "-c", code, bench.server.endpoint, bucket, key, dest]


def raw_files(bench: Bench, case: str, source: Path) -> Timing:
    """One PUT per file on a pool of threads, then one GET per object into a fresh folder."""
    bucket = bench.bucket(f"rawfiles-{case}")
    folder = bench.folder(f"rawfiles-{case}")
    client = s3_client(bench.server, RAW_FILE_THREADS)
    names = sorted(p.name for p in source.iterdir())
    dest = folder / source.name
    dest.mkdir()

    def put(name: str) -> None:
        client.put_object(Bucket=bucket, Key=f"raw/{name}", Body=(source / name).read_bytes())

    def get(name: str) -> None:
        body = client.get_object(Bucket=bucket, Key=f"raw/{name}")["Body"].read()
        (dest / name).write_bytes(body)

    with ThreadPoolExecutor(RAW_FILE_THREADS) as pool:
        push_s = clock(lambda: list(pool.map(put, names)))
        pull_s = clock(lambda: list(pool.map(get, names)))
    check_same(source, dest)
    bench.done(folder)
    stored = sum(p.stat().st_size for p in source.iterdir())
    return Timing(push_s, pull_s, stored_bytes=stored)


def dvc_repo(bench: Bench, dvc: Path, bucket: str, folder: Path) -> Path:
    repo = folder / "repo"
    repo.mkdir()
    run(["git", "init", "-q"], repo, bench.env)
    run([dvc, "init", "-q"], repo, bench.env)
    run([dvc, "config", "core.analytics", "false"], repo, bench.env)
    run([dvc, "remote", "add", "-d", "s3", f"s3://{bucket}/dvc"], repo, bench.env)
    for key, value in (("endpointurl", bench.server.endpoint), ("region", "us-east-1")):
        run([dvc, "remote", "modify", "s3", key, value], repo, bench.env)
    git_commit(repo, bench.env, "dvc init")
    return repo


def dvc_case(bench: Bench, case: str, artifact: Path) -> Timing:
    """dvc add + dvc push from one repo, dvc pull into a clone with an empty cache."""
    assert bench.dvc is not None
    bucket = bench.bucket(f"dvc-{case}")
    folder = bench.folder(f"dvc-{case}")
    repo = dvc_repo(bench, bench.dvc, bucket, folder)
    copy_artifact(artifact, repo / artifact.name)
    add_s, _ = timed([bench.dvc, "add", artifact.name], repo, bench.env)
    push_s, _ = timed([bench.dvc, "push"], repo, bench.env)
    git_commit(repo, bench.env, f"add {artifact.name}")
    stored = sum(bucket_objects(bench.server, bucket).values())
    clone = git_clone(repo, bench.env)
    pull_s, _ = timed([bench.dvc, "pull"], clone, bench.env)
    check_same(artifact, clone / artifact.name)
    bench.done(folder)
    return Timing(push_s, pull_s, add_s, stored)


def ensure_dvc(venv: Path) -> Path:
    """DVC lives in its own venv under bench/.work, never in the project's environment."""
    dvc = venv / "bin" / "dvc"
    if dvc.exists():
        return dvc
    log(f"installing dvc and dvc-s3 into {venv} (once)")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "dvc", "dvc-s3"]
    proc = subprocess.run(pip, capture_output=True, text=True)
    if proc.returncode != 0 or not dvc.exists():
        raise BenchError(f"installing dvc failed:\n{proc.stdout}{proc.stderr}")
    return dvc


def source_fingerprint(package: Path) -> str:
    """A short digest of a package's Python sources."""
    digest = hashlib.sha256()
    for path in sorted(package.rglob("*.py")):
        digest.update(path.relative_to(package).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:12]


def snapshot_mreg(work: Path) -> Path:
    """A copy of mreg's sources that every mreg command of the run imports (via PYTHONPATH).

    mreg is installed editable and may be edited while the benchmark runs; without the copy,
    one run could time several versions.
    """
    dest = work / "mreg-src"
    shutil.rmtree(dest, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(ROOT / "mreg", dest / "mreg", ignore=ignore)
    return dest


def check_snapshot(env: dict[str, str], snapshot: Path) -> None:
    code = "import mreg.cli; print(mreg.__file__)"
    where = run([sys.executable, "-c", code], snapshot, env).strip()
    if not Path(where).is_relative_to(snapshot):
        raise BenchError(f"mreg commands would import {where}, not the snapshot in {snapshot}")


def start_server(base: Path) -> Seaweed:
    """SeaweedFS on free ports in a fresh ``base`` (start_seaweed retries on port races)."""
    shutil.rmtree(base, ignore_errors=True)
    return start_seaweed(base, tries=SEAWEED_TRIES)


def mreg_binary() -> str:
    """The console script next to this interpreter (a pyenv shim would add its own start-up)."""
    beside = Path(sys.executable).parent / "mreg"
    found = str(beside) if beside.exists() else shutil.which("mreg")
    if found is None:
        raise BenchError("mreg is not installed: pip install -e .")
    return found


# -- running --------------------------------------------------------------------------------

Results = dict[str, dict[str, Timing]]
Checks = dict[str, Check]


def run_once(bench: Bench, inputs: Inputs, args: argparse.Namespace) -> tuple[Results, Checks]:
    results: Results = {"large": {}, "rows": {}}
    checks: Checks = {}
    log("large: raw boto3")
    results["large"]["raw"] = raw_large(bench, "large", inputs.model)
    log("large: mreg")
    results["large"]["mreg"], checks["readd"] = mreg_case(bench, "large", inputs.model, None)
    if bench.dvc:
        log("large: dvc")
        results["large"]["dvc"] = dvc_case(bench, "large", inputs.model)
    log("rows: raw boto3 (one parquet object)")
    results["rows"]["raw"] = raw_large(bench, "rows", inputs.table)
    if not args.skip_raw_files:
        log("rows: raw boto3 (one object per row)")
        results["rows"]["raw_files"] = raw_files(bench, "rows", inputs.folder)
    log("rows: mreg")
    results["rows"]["mreg"], checks["append"] = mreg_case(bench, "rows", inputs.table, inputs.more)
    if bench.dvc:
        log("rows: dvc (one file per row)")
        results["rows"]["dvc"] = dvc_case(bench, "rows", inputs.folder)
    return results, checks


def median_timing(runs: list[Timing]) -> Timing:
    adds = [t.add_s for t in runs if t.add_s is not None]
    return Timing(
        push_s=statistics.median(t.push_s for t in runs),
        pull_s=statistics.median(t.pull_s for t in runs),
        add_s=statistics.median(adds) if adds else None,
        stored_bytes=runs[-1].stored_bytes,
        notes={key: median_note(runs, key) for key in runs[-1].notes},
    )


def median_note(runs: list[Timing], key: str) -> str:
    """Seconds (keys ending in ``_s``) as their median; other notes from the last round."""
    if not key.endswith("_s"):
        return runs[-1].notes[key]
    return f"{statistics.median(float(t.notes[key]) for t in runs):.3f}"


def median_results(all_runs: list[Results]) -> Results:
    return {
        case: {name: median_timing([r[case][name] for r in all_runs]) for name in contenders}
        for case, contenders in all_runs[0].items()
    }


def benchmark(
    bench: Bench, inputs: Inputs, args: argparse.Namespace
) -> tuple[list[Results], Checks]:
    """Every round's results, and the mreg-only checks of the last round."""
    runs = []
    checks: Checks = {}
    for number in range(args.repeat):
        if args.repeat > 1:
            log(f"round {number + 1} of {args.repeat}")
        results, checks = run_once(bench, inputs, args)
        runs.append(results)
    return runs, checks


# -- reporting ------------------------------------------------------------------------------


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def cell(value: float | None, suffix: str = "") -> str:
    return "-" if value is None else f"{value:.2f}{suffix}"


def note_s(timing: Timing, key: str) -> float | None:
    return float(timing.notes[key]) if key in timing.notes else None


def scenario_rows(results: Results, labels: dict[str, str]) -> list[dict[str, Any]]:
    """Table rows: per case, add+push (and its two parts) and pull, for every contender."""
    rows = []
    for case, label in labels.items():
        timings = results[case]
        steps: list[tuple[str, Callable[[Timing], float | None]]] = [
            (f"{label} add+push", lambda t: t.upload_s),
            ("    of which add", lambda t: t.add_s),
            ("    of which push", lambda t: t.push_s),
            (f"{label} pull", lambda t: t.pull_s),
            ("    split: fetch", lambda t: note_s(t, "fetch_s")),
            ("    split: checkout", lambda t: note_s(t, "checkout_s")),
        ]
        for name, pick in steps:
            values = {c: pick(t) for c, t in timings.items()}
            rows.append(
                {
                    "scenario": name,
                    "mreg_s": values.get("mreg"),
                    "raw_s": values.get("raw"),
                    "dvc_s": values.get("dvc"),
                    "mreg_over_raw": ratio(values.get("mreg"), values.get("raw")),
                    "dvc_over_mreg": ratio(values.get("dvc"), values.get("mreg")),
                }
            )
    return rows


def goals(results: Results, checks: Checks) -> list[dict[str, Any]]:
    large, rows = results["large"], results["rows"]
    found = [
        ("large add+push <= 1.3x raw upload", ratio(large["mreg"].upload_s, large["raw"].push_s)),
        ("large push alone <= 1.3x raw upload", ratio(large["mreg"].push_s, large["raw"].push_s)),
        ("large pull <= 1.3x raw download", ratio(large["mreg"].pull_s, large["raw"].pull_s)),
    ]
    listed = [
        {"goal": name, "value": value, "met": value is not None and value <= GOAL_LARGE_RATIO}
        for name, value in found
    ]
    if "dvc" in rows:
        for step, pick in (("add+push", "upload_s"), ("pull", "pull_s")):
            value = ratio(getattr(rows["dvc"], pick), getattr(rows["mreg"], pick))
            listed.append(
                {
                    "goal": f"table {step} >= 10x faster than DVC on files",
                    "value": value,
                    "met": value is not None and value >= GOAL_DVC_SPEEDUP,
                }
            )
    share = checks["append"].share
    listed.append(
        {"goal": "append 1% rows uploads <= 2%", "value": share, "met": share <= GOAL_APPEND_SHARE}
    )
    readd = checks["readd"].bytes_uploaded
    listed.append({"goal": "re-add unchanged file uploads 0 B", "value": readd, "met": readd == 0})
    return listed


def print_report(
    table: list[dict[str, Any]],
    results: Results,
    checks: Checks,
    met: list[dict[str, Any]],
    startup: float,
    rounds: list[Results],
) -> None:
    header = (
        f"{'scenario':<26}{'mreg s':>9}{'raw s':>9}{'dvc s':>9}{'mreg/raw':>10}{'dvc/mreg':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in table:
        print(
            f"{row['scenario']:<26}{cell(row['mreg_s']):>9}{cell(row['raw_s']):>9}"
            f"{cell(row['dvc_s']):>9}{cell(row['mreg_over_raw'], 'x'):>10}"
            f"{cell(row['dvc_over_mreg'], 'x'):>10}"
        )
    print()
    if "raw_files" in results["rows"]:
        files = results["rows"]["raw_files"]
        print(
            f"raw boto3, one object per row ({RAW_FILE_THREADS} threads): "
            f"upload {files.push_s:.2f} s, download {files.pull_s:.2f} s"
        )
    for name, check in checks.items():
        print(
            f"{name}: mreg add {check.add_s:.2f} s + push {check.push_s:.2f} s uploaded "
            f"{human_bytes(check.bytes_uploaded)} of {human_bytes(check.bytes_before)} already "
            f"in the bucket ({check.share:.2%}); push said: {check.push_output!r}"
        )
    print(f"mreg start-up (fastest of 3 `mreg --help`): {startup:.2f} s in every mreg command")
    large = results["large"]
    command = note_s(large["raw"], "command_pull_s")
    if command is not None:
        print(
            f"raw download as a command (fresh python, boto3 import, client, download): "
            f"{command:.2f} s; mreg pull / that: {large['mreg'].pull_s / command:.2f}x"
        )
    if len(rounds) > 1:
        each = [r["large"]["mreg"].pull_s / r["large"]["raw"].pull_s for r in rounds]
        print(f"large pull mreg/raw in each round: {', '.join(f'{x:.2f}x' for x in each)}")
    print()
    for goal in met:
        value = goal["value"]
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        print(f"[{'MET' if goal['met'] else 'NOT MET'}] {goal['goal']} (measured {shown})")


def startup_s(bench: Bench) -> float:
    """The fastest of three ``mreg --help``: what every mreg command pays before any work."""
    return min(timed([bench.mreg, "--help"], ROOT, bench.env)[0] for _ in range(3))


def environment(bench: Bench) -> dict[str, str]:
    commit = run(["git", "rev-parse", "--short", "HEAD"], ROOT, bench.env).strip()
    dirty = run(["git", "status", "--porcelain", "mreg"], ROOT, bench.env).strip()
    info = {
        "python": platform.python_version(),
        "cpus": str(os.cpu_count()),
        "mreg": f"{metadata.version('mreg')} at {commit}" + (" + local edits" if dirty else ""),
        "pylance": metadata.version("pylance"),
        "pyarrow": pa.__version__,
        "boto3": boto3.__version__,
    }
    if bench.dvc:
        info["dvc"] = run([bench.dvc, "--version"], ROOT, bench.env).strip()
    return info


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="size of the safetensors file")
    parser.add_argument("--tensors", type=int, default=32, help="tensors in the safetensors file")
    parser.add_argument("--rows", type=int, default=20000, help="rows of the table")
    parser.add_argument("--blob-kib", type=int, default=4, help="size of each row's blob")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    parser.add_argument("--skip-dvc", action="store_true", help="leave DVC out")
    parser.add_argument(
        "--skip-raw-files", action="store_true", help="leave out the one-object-per-row baseline"
    )
    parser.add_argument(
        "--recycle-gib",
        type=float,
        default=2.0,
        help="memory touched and freed before each timed step (see settle; 0: none)",
    )
    parser.add_argument("--keep", action="store_true", help="keep repos, inputs and bucket data")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / ".work")
    args = parser.parse_args(argv)
    global RECYCLE_BYTES  # read by settle(), which formats.py shares
    RECYCLE_BYTES = int(args.recycle_gib * (1 << 30)) // mmap.PAGESIZE * mmap.PAGESIZE
    return args


class CpuMeter:
    """CPU time the machine spent on work other than this benchmark (and its children) while it
    ran: the machines are shared, and a busy neighbour makes every number slower. Kernel
    writeback of this run's own files counts as "other" too, so a few percent is normal."""

    def __init__(self) -> None:
        self.start_wall = time.monotonic()
        self.start_busy = busy_cpu_s()
        self.start_own = own_cpu_s()

    def other_share(self) -> float:
        wall = (time.monotonic() - self.start_wall) * (os.cpu_count() or 1)
        other = (busy_cpu_s() - self.start_busy) - (own_cpu_s() - self.start_own)
        return max(0.0, other) / wall if wall else 0.0


def busy_cpu_s() -> float:
    """Busy CPU seconds of the whole machine since boot (all but idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_s() -> float:
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + children.ru_utime + children.ru_stime


def prepare(work: Path, args: argparse.Namespace) -> tuple[Inputs, Path, dict[str, str]]:
    """Inputs, a snapshot of mreg's sources, and the environment of every command."""
    log(f"writing inputs: {args.size_mib} MiB safetensors, {args.rows:,} rows")
    inputs = make_inputs(work / "inputs", args)
    shutil.rmtree(work / "runs", ignore_errors=True)
    snapshot = snapshot_mreg(work)
    env = tool_env(snapshot)
    check_snapshot(env, snapshot)
    return inputs, snapshot, env


def measure(
    work: Path, args: argparse.Namespace, inputs: Inputs, env: dict[str, str], dvc: Path | None
) -> tuple[list[Results], Checks, dict[str, str], float]:
    """Start the server, run every contender, stop the server; rounds, environment, start-up."""
    meter = CpuMeter()
    server = start_server(work / "seaweed")
    bench = Bench(server, work, env, mreg_binary(), dvc, args.keep)
    try:
        info = environment(bench)
        rounds, checks = benchmark(bench, inputs, args)
        startup = startup_s(bench)
    finally:
        server.stop()
        if not args.keep:
            for name in ("inputs", "runs", "seaweed", "mreg-src"):
                shutil.rmtree(work / name, ignore_errors=True)
    info["other_cpu_share"] = f"{meter.other_share():.1%}"
    return rounds, checks, info, startup


def results_json(results: Results) -> dict[str, Any]:
    return {
        case: {name: {**asdict(t), "upload_s": t.upload_s} for name, t in timings.items()}
        for case, timings in results.items()
    }


def write_json(path: Path, args: argparse.Namespace, **parts: Any) -> None:
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    path.write_text(json.dumps({"config": config, **parts}, indent=2) + "\n")
    print(f"\nresults written to {path}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dvc = None if args.skip_dvc else ensure_dvc(work / "dvc-venv")
    inputs, snapshot, env = prepare(work, args)
    info = {"mreg_source": source_fingerprint(snapshot / "mreg")}
    rounds, checks, measured, startup = measure(work, args, inputs, env, dvc)
    results = median_results(rounds)
    info.update(measured)
    size = "1 GiB" if args.size_mib == 1024 else f"{args.size_mib} MiB"
    table = scenario_rows(results, {"large": size, "rows": f"{args.rows // 1000}k-rows"})
    met = goals(results, checks)
    print(f"\nmreg {info['mreg']}, sources {info['mreg_source']}, on {info['cpus']} cores")
    print(f"CPU used by other work on the machine meanwhile: {info['other_cpu_share']}")
    print_report(table, results, checks, met, startup, rounds)
    write_json(
        work / "core-results.json",
        args,
        environment=info,
        mreg_startup_s=startup,
        table=table,
        results=results_json(results),
        rounds=[results_json(r) for r in rounds],
        checks={name: {**asdict(c), "share": c.share} for name, c in checks.items()},
        goals=met,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
