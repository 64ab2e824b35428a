"""Remote kinds benchmark: mreg push and pull on GCS (fake-gcs-server), Azure (Azurite), SSH (an
asyncssh SFTP server) and HTTP (pull only, http.server over a pushed local remote), each against
the raw client of that store moving the same files in the same run.

    python bench/remotes.py [--size-mib 256] [--rows 20000] [--kinds gcs,azure,ssh,http]

Two artifacts: one safetensors model of ``--size-mib`` MiB, and ``--rows`` rows (an id and a
1 KiB blob) as one Parquet file. The raw client puts and gets those two source files (gcsfs,
adlfs, sshfs; ``requests`` over HTTP for the data files mreg pushed). Ratios are mreg / raw.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
import store_servers  # noqa: E402

MIB = 1 << 20


def clock(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def mreg(cwd: Path, *args: str) -> None:
    from mreg.cli import main

    old = Path.cwd()
    os.chdir(cwd)
    try:
        main(list(args))
    except SystemExit as done:
        if done.code:
            raise RuntimeError(f"mreg {' '.join(args)} failed") from None
    finally:
        os.chdir(old)


def git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def make_inputs(folder: Path, size_mib: int, rows: int) -> list[Path]:
    from safetensors.numpy import save_file

    rng = np.random.default_rng(0)
    per = size_mib * MIB // 16 // 4
    save_file(
        {f"layer.{i}": rng.standard_normal(per, dtype=np.float32) for i in range(16)},
        str(folder / "model.safetensors"),
    )
    blobs = [rng.bytes(1024) for _ in range(rows)]
    table = pa.table({"id": np.arange(rows), "blob": pa.array(blobs, pa.binary())})
    pq.write_table(table, folder / "rows.parquet")
    return [folder / "model.safetensors", folder / "rows.parquet"]


def mreg_round(
    work: Path, url: str, add_args: list[str], inputs: list[Path]
) -> tuple[float, float]:
    """Seconds for ``mreg push`` of both artifacts, and ``mreg pull`` in a fresh clone."""
    repo = work / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    mreg(repo, "init")
    for source in inputs:
        os.link(source, repo / source.name)
        mreg(repo, "add", source.name)
    mreg(repo, "remote", "add", "store", url, "--default", *add_args)
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qm", "bench")
    push = clock(lambda: mreg(repo, "push"))
    git(work, "clone", "-q", str(repo), str(work / "clone"))
    pull = clock(lambda: mreg(work / "clone", "pull"))
    return push, pull


def raw_round(fs: Any, root: str, inputs: list[Path], work: Path) -> tuple[float, float]:
    """Seconds for the store's own fsspec client to put both files, then get them back."""
    put = clock(lambda: [fs.put_file(str(p), f"{root}/raw/{p.name}") for p in inputs])
    got = work / "raw-get"
    got.mkdir()
    get = clock(lambda: [fs.get_file(f"{root}/raw/{p.name}", str(got / p.name)) for p in inputs])
    return put, get


@contextlib.contextmanager
def kind_setup(name: str, folder: Path) -> Iterator[tuple[str, list[str], Any, str]]:
    """(mreg URL, remote add options, raw fsspec client, raw root) for one kind's server."""
    if name == "gcs":
        from gcsfs.core import GCSFileSystem

        with store_servers.gcs_server(folder) as server:
            server.create_bucket("bench")
            fs = GCSFileSystem(token="anon", endpoint_url=server.endpoint)
            yield "gs://bench/team", ["--endpoint-url", server.endpoint], fs, "bench/team"
    elif name == "azure":
        from adlfs import AzureBlobFileSystem

        with store_servers.azure_server(folder) as server:
            server.create_container("bench")
            os.environ["AZURE_STORAGE_CONNECTION_STRING"] = server.connection_string()
            fs = AzureBlobFileSystem(connection_string=server.connection_string())
            yield "az://bench/team", [], fs, "bench/team"
    elif name == "ssh":
        from sshfs import SSHFileSystem

        with store_servers.ssh_server(folder) as server:
            server.trust(Path(os.environ["HOME"]))
            user = os.environ.get("USER", "root")
            fs = SSHFileSystem("127.0.0.1", port=server.port, username=user, known_hosts=())
            fs.makedirs("/team/raw", exist_ok=True)
            yield f"ssh://{user}@127.0.0.1:{server.port}/team", [], fs, "/team"
    else:
        raise ValueError(name)


def http_case(folder: Path, inputs: list[Path]) -> tuple[float, float]:
    """mreg pull from an HTTP remote vs ``requests`` getting the same data files."""
    import requests

    local = folder / "local-remote"
    work = folder / "http-mreg"
    work.mkdir()
    mreg_round(work, str(local), [], inputs)  # pushes to the local folder
    files = sorted(p for p in (local / "data").rglob("*") if p.is_file())
    with store_servers.http_server(local, folder) as url:
        clone = work / "clone2"
        git(work, "clone", "-q", str(work / "repo"), str(clone))
        mreg(clone, "remote", "add", "web", url, "--default")
        pull = clock(lambda: mreg(clone, "pull"))
        session = requests.Session()

        def get_all() -> None:
            for path in files:
                response = session.get(f"{url}/{path.relative_to(local).as_posix()}")
                response.raise_for_status()
                (folder / "http-raw").write_bytes(response.content)

        raw = clock(get_all)
    return pull, raw


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--kinds", default="gcs,azure,ssh,http")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mreg-bench-remotes-") as temp:
        folder = Path(temp)
        os.environ.update(HOME=str(folder / "home"), MREG_NO_PROGRESS="1")
        (folder / "home").mkdir()
        inputs = make_inputs(folder, args.size_mib, args.rows)
        total = sum(p.stat().st_size for p in inputs)
        rows = [("kind", "push", "raw put", "ratio", "pull", "raw get", "ratio")]
        for name in args.kinds.split(","):
            work = folder / name
            work.mkdir()
            if name == "http":
                pull, get = http_case(work, inputs)
                rows.append((name, "-", "-", "-", f"{pull:.2f}", f"{get:.2f}", f"{pull / get:.2f}"))
                continue
            with kind_setup(name, work) as (url, add_args, fs, root):
                push, pull = mreg_round(work, url, add_args, inputs)
                put, get = raw_round(fs, root, inputs, work)
            times = (push, put, push / put, pull, get, pull / get)
            rows.append((name, *(f"{t:.2f}" for t in times)))
        print(f"{args.size_mib} MiB model + {args.rows:,} rows: {total / MIB:.0f} MiB in all")
        for row in rows:
            print(f"{row[0]:<6} " + " ".join(f"{cell:>8}" for cell in row[1:]))


if __name__ == "__main__":
    main()
