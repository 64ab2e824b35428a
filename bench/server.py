"""``mreg serve`` side by side with the local paths it stands in for.

    python bench/server.py                                  # 1 GiB model, 1,000 versions, 20 s
    python bench/server.py --size-mib 128 --versions 100 --seconds 5   # quick run

1. download: a ``--size-mib`` model through REST (``mreg.Client.download``, 4 ranged streams)
   vs ``mreg pull`` of the same version in a clone (empty cache) straight from the repository's
   S3 remote (a SeaweedFS server the bench starts on loopback; ``--local-remote``: a folder).
   With S3, a presigned-URL redirect is measured too: the restored file put in the bucket once,
   then fetched from S3 by the same client (the alternative to proxying the bytes).
2. metadata: ``GET /api/v1/models/{name}`` by 16 concurrent clients for ``--seconds`` with
   ``--versions`` registered versions: requests/s, p50, p99.
3. rows: 100,000 rows as Arrow IPC over REST vs ``mreg.open(...).to_table()`` from the cache.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from serve_helpers import WRITER, mreg_serve  # noqa: E402

MREG = [sys.executable, "-c", "from mreg.cli import script; script()"]


def sh(cwd: Path, *args: str) -> None:
    subprocess.run(list(args), cwd=cwd, check=True, capture_output=True)


def setup(root: Path, size_mib: int, versions: int, s3: str | None) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq
    from safetensors.numpy import save_file

    sh(root, "git", "init", "-q", "-b", "main")
    sh(root, *MREG, "init")
    if s3 is None:
        sh(root, *MREG, "remote", "add", "origin", str(root.parent / "store"), "--default")
    else:
        endpoint = ["--endpoint-url", s3, "--region", "us-east-1"]
        sh(root, *MREG, "remote", "add", "origin", "s3://bench/server", "--default", *endpoint)
    count = max(1, size_mib // 32)
    rng = np.random.default_rng(0)
    tensors = {f"t{i}": rng.standard_normal(8 << 20, dtype=np.float32) for i in range(count)}
    save_file(tensors, str(root.parent / "big.safetensors"))
    sh(root, *MREG, "register", str(root.parent / "big.safetensors"), "--name", "big")
    ids = np.arange(100_000)
    table = pa.table({"id": ids, "x": rng.standard_normal(100_000), "label": ids % 10})
    pq.write_table(table, root / "rows.parquet")
    sh(root, *MREG, "add", "rows.parquet")
    sh(root, "git", "add", "-A")
    sh(root, "git", "commit", "-qm", "rows")
    small = root.parent / "small.safetensors"
    save_file({"w": np.ones(16, np.float32)}, str(small))
    from mreg.registry import ModelRegistry

    registry = ModelRegistry(root)
    for _ in range(versions):
        registry.register_model("small", small)
    sh(root, *MREG, "push")


def bench_download(root: Path, url: str, size_mib: int, s3: str | None) -> dict[str, float]:
    """The first REST download (the server restores the file from its cache first) and a
    second one (the restored file served again), against ``mreg pull`` in a fresh clone; with
    S3, also what a redirect to a presigned URL would give: the restored file uploaded to the
    bucket (what the server would do once per version), then fetched from S3 by the same
    4-stream client."""
    import mreg

    client = mreg.Client(url, WRITER)
    timings = {}
    for round_name in ("rest_first_s", "rest_s"):
        target = root.parent / f"{round_name}.safetensors"
        start = time.perf_counter()
        client.download("big", target)
        timings[round_name] = time.perf_counter() - start
        target.unlink()
    clone = root.parent / "clone"
    sh(root.parent, "git", "clone", "-q", str(root), str(clone))
    start = time.perf_counter()
    sh(clone, *MREG, "pull", "big")
    timings["pull_s"] = time.perf_counter() - start
    if s3 is not None:
        timings.update(presigned(root, clone / "big.safetensors", s3))
    mb = size_mib * 1.048576
    rates = {f"{k[:-2]}_MBps": mb / v for k, v in timings.items() if k != "upload_once_s"}
    return {**timings, **rates}


def presigned(root: Path, file: Path, endpoint: str) -> dict[str, float]:
    import boto3
    import httpx

    from mreg.client import ranged
    from mreg.hashing import sha256_file

    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    start = time.perf_counter()
    s3.upload_file(str(file), "bench", "served/big.safetensors")
    upload = time.perf_counter() - start
    link = s3.generate_presigned_url(
        "get_object", Params={"Bucket": "bench", "Key": "served/big.safetensors"}, ExpiresIn=600
    )
    size, digest = file.stat().st_size, sha256_file(file)
    target = root.parent / "presigned.safetensors"
    with httpx.Client(timeout=60) as http:
        start = time.perf_counter()
        ranged.fetch(http, link, target, size, digest)
        fetched = time.perf_counter() - start
    target.unlink()
    return {"upload_once_s": upload, "presigned_s": fetched}


def bench_metadata(url: str, seconds: float, clients: int = 16) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    stop = time.monotonic() + seconds
    lock = threading.Lock()

    def worker() -> None:
        mine = []
        with httpx.Client(headers={"Authorization": f"Bearer {WRITER}"}) as http:
            while time.monotonic() < stop:
                start = time.perf_counter()
                http.get(f"{url}/api/v1/models/small").raise_for_status()
                mine.append(time.perf_counter() - start)
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    latencies.sort()
    return {"req_per_s": len(latencies) / seconds, "p50_ms": statistics.median(latencies) * 1e3,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1e3}  # fmt: skip


def bench_rows(root: Path, url: str) -> dict[str, float]:
    import mreg

    start = time.perf_counter()
    rest = mreg.Client(url, WRITER).open("rows").read_all()
    rest_s = time.perf_counter() - start
    start = time.perf_counter()
    local = mreg.open("rows", repo=root).to_table()
    local_s = time.perf_counter() - start
    assert rest.num_rows == local.num_rows == 100_000
    return {"rest_s": rest_s, "cache_s": local_s}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--versions", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--local-remote", action="store_true", help="a folder, not S3")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="mreg-bench-server-"))
    root = work / "repo"
    root.mkdir()
    os.environ.setdefault("MREG_NO_PROGRESS", "1")
    seaweed = None
    if not args.local_remote:
        from seaweed import ACCESS_KEY, SECRET_KEY, start_seaweed

        seaweed = start_seaweed(work / "seaweed")
        seaweed.create_bucket("bench")
        os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    try:
        setup(root, args.size_mib, args.versions, seaweed.endpoint if seaweed else None)
        with mreg_serve(root) as server:
            results = {
                "download": bench_download(
                    root, server.url, args.size_mib, seaweed.endpoint if seaweed else None
                ),
                "metadata": bench_metadata(server.url, args.seconds),
                "rows": bench_rows(root, server.url),
            }
    finally:
        if seaweed is not None:
            seaweed.stop()
        shutil.rmtree(work, ignore_errors=True)
    for case, numbers in results.items():
        print(case, "  ".join(f"{k}={v:.3f}" for k, v in numbers.items()))
    d = results["download"]
    ratio, first = d["rest_MBps"] / d["pull_MBps"], d["rest_first_MBps"] / d["pull_MBps"]
    source = "a local folder" if args.local_remote else "S3 (SeaweedFS on loopback)"
    print(f"download throughput REST/pull from {source}: {ratio:.2f}x (goal 0.8x); ", end="")
    print(f"first download, restore included: {first:.2f}x")
    if "presigned_MBps" in d:
        redirect = d["presigned_MBps"] / d["pull_MBps"]
        print(f"a redirect to a presigned S3 URL would give {redirect:.2f}x, after an upload of "
              f"{d['upload_once_s']:.1f} s per version (a second copy in the bucket)")  # fmt: skip
    m = results["metadata"]
    rate, p99 = m["req_per_s"], m["p99_ms"]
    print(f"model info: {rate:.0f} req/s (goal 1,000), p99 {p99:.1f} ms (goal 50)")


if __name__ == "__main__":
    main()
