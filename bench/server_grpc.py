"""The gRPC server against the local library, side by side, on one machine.

    python bench/server_grpc.py                      # 256 MiB model, 100 versions, 10 s of metadata
    python bench/server_grpc.py --size-mib 64 --versions 20 --seconds 5

Download: ``GrpcClient.download`` of a registered model (server restores it from the cache and
streams it; the client checks its sha256) against the same restore done locally in-process
(``mreg.repo.rebuild.write_copy``, what the server does before streaming). Metadata:
``get_model_info`` from 16 client threads for ``--seconds``: requests/s and p50/p99 latency.
Rows: ``--rows`` rows as Arrow IPC through ``GrpcClient.open`` against ``mreg.open(...)``.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "bench-token-0123456789"


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def build_repo(work: Path, size_mib: int, versions: int, rows: int) -> Path:
    from safetensors.numpy import save_file

    import mreg

    repo = work / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    mreg.Repo.init(repo)
    tensors = 16
    per = size_mib * (1 << 20) // 4 // tensors
    rng = np.random.default_rng(0)
    big = work / "big.safetensors"
    save_file(
        {f"t{i}": rng.standard_normal(per, dtype=np.float32) for i in range(tensors)}, str(big)
    )
    registry = mreg.ModelRegistry(repo)
    registry.register_model("big", big)
    small = work / "small.safetensors"
    for i in range(versions):
        save_file({"w": rng.standard_normal(64, dtype=np.float32)}, str(small))
        registry.register_model("net", small, performance_metrics={"acc": i / versions})
    table = pa.table({"id": np.arange(rows), "x": rng.standard_normal(rows)})
    pq.write_table(table, repo / "table.parquet")
    mreg.Repo(repo).add(repo / "table.parquet")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "table")
    return repo


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--versions", type=int, default=100)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()

    import mreg
    from mreg.client.grpc_client import GrpcClient
    from mreg.repo.rebuild import write_copy

    work = Path(tempfile.mkdtemp(prefix="mreg-bench-grpc-"))
    server = None
    try:
        repo = build_repo(work, args.size_mib, args.versions, args.rows)
        (work / "tokens").write_text(f"bench write {TOKEN}\n")
        port = free_port()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        server = subprocess.Popen(
            [sys.executable, "-m", "mreg.server.grpc_service", str(repo), "--port", str(port),
             "--token-file", str(work / "tokens")],
            env=env, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"grpc://127.0.0.1:{port}"
        client = GrpcClient(url, TOKEN)
        for _ in range(100):
            try:
                client.info()
                break
            except mreg.MregError:
                time.sleep(0.2)
        results = []

        target = mreg.Repo(repo).target("big@v0.1.0")
        start = time.perf_counter()
        write_copy(mreg.Repo(repo), target.manifest, work / "local.safetensors")
        local = time.perf_counter() - start
        start = time.perf_counter()
        got = client.download("big@v0.1.0", work / "remote.safetensors")
        remote = time.perf_counter() - start
        assert hashlib.sha256(got.read_bytes()).hexdigest() == target.manifest.source.sha256
        mb = args.size_mib * (1 << 20) / 1e6
        local_text = f"{local:.2f} s ({mb / local:.0f} MB/s)"
        remote_text = f"{remote:.2f} s ({mb / remote:.0f} MB/s)"
        results.append(("download", local_text, remote_text, f"{local / remote:.2f}x"))

        start = time.perf_counter()
        local_rows = mreg.open("table", repo=repo).to_table().num_rows
        local = time.perf_counter() - start
        start = time.perf_counter()
        remote_rows = sum(b.num_rows for b in client.open("table"))
        remote = time.perf_counter() - start
        assert local_rows == remote_rows == args.rows
        results.append(("rows", f"{local:.3f} s", f"{remote:.3f} s", f"{local / remote:.2f}x"))

        latencies: list[float] = []
        stop = time.perf_counter() + args.seconds

        def hammer() -> None:
            own = GrpcClient(url, TOKEN)
            mine = []
            while time.perf_counter() < stop:
                begin = time.perf_counter()
                own.get_model_info("net")
                mine.append(time.perf_counter() - begin)
            latencies.extend(mine)
            own.close()

        threads = [threading.Thread(target=hammer) for _ in range(args.threads)]
        begin = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - begin
        latencies.sort()
        p50 = statistics.median(latencies) * 1000
        p99 = latencies[int(len(latencies) * 0.99)] * 1000
        rate = len(latencies) / elapsed
        results.append(
            ("model info", "", f"{rate:.0f} req/s, p50 {p50:.1f} ms, p99 {p99:.1f} ms", "")
        )
        client.close()

        print(f"{'case':<12} {'local':<24} {'gRPC':<40} local/gRPC time")
        for case, a, b, ratio in results:
            print(f"{case:<12} {a:<24} {b:<40} {ratio}")
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
