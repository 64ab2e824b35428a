"""Issue 13: only changed bytes travel. A second version of a table or folder is pushed after the
first is on the remote; the bytes it uploads are counted on the S3 server (SeaweedFS), for mreg,
DVC and a whole-file upload side by side, with mreg's add time against a plain add of the same
second version into a fresh repository.

    python bench/dedup.py [--rows 20000] [--images 20000] [--skip-dvc] [--keep]

Each scenario is a function ``(bench, args) -> list[Row]``: add one to SCENARIOS.
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from core import (
    Bench,
    bucket_objects,
    check_snapshot,
    dvc_repo,
    ensure_dvc,
    git_clone,
    git_commit,
    log,
    make_table,
    mreg_binary,
    mreg_repo,
    run,
    snapshot_mreg,
    start_server,
    timed,
    tool_env,
    uploaded_between,
)

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Row:
    scenario: str
    tool: str
    artifact_bytes: int  # the first version's size, stored or on disk
    uploaded_bytes: int  # what the second version added on the remote
    goal: float  # uploaded / artifact_bytes must stay at or under this
    add_s: float = 0.0  # the second version's add (mreg re-add, dvc add)
    plain_add_s: float = 0.0  # the same second version added into a fresh repository

    @property
    def share(self) -> float:
        return self.uploaded_bytes / self.artifact_bytes if self.artifact_bytes else 0.0


# A version: writes the artifact (file or folder) at the given path.
Version = Callable[[Path], None]


def two_versions(
    bench: Bench, scenario: str, name: str, first: Version, second: Version, goal: float
) -> list[Row]:
    """mreg, DVC and a whole-file upload of ``first`` then ``second``."""
    rows = [mreg_versions(bench, scenario, name, first, second, goal)]
    if bench.dvc is not None:
        rows.append(dvc_versions(bench, scenario, name, first, second, goal))
    probe = bench.folder(f"whole-{_slug(scenario)}")
    second(probe / name)
    rows.append(Row(scenario, "whole-file", _size(probe / name), _size(probe / name), goal))
    bench.done(probe)
    return rows


def mreg_versions(
    bench: Bench, scenario: str, name: str, first: Version, second: Version, goal: float
) -> Row:
    bucket = bench.bucket(f"mreg-{_slug(scenario)}")
    folder = bench.folder(f"mreg-{_slug(scenario)}")
    repo = mreg_repo(bench, bucket, folder)
    first(repo / name)
    run([bench.mreg, "add", name], repo, bench.env)
    run([bench.mreg, "push"], repo, bench.env)
    git_commit(repo, bench.env, "v1")
    before = bucket_objects(bench.server, bucket)
    _replace(repo / name, second)
    add_s, _ = timed([bench.mreg, "add", name], repo, bench.env)
    run([bench.mreg, "push"], repo, bench.env)
    git_commit(repo, bench.env, "v2")
    sent = uploaded_between(before, bucket_objects(bench.server, bucket))
    clone = git_clone(repo, bench.env)
    run([bench.mreg, "pull"], clone, bench.env)
    _check_same(repo / name, clone / name)
    (folder / "plain").mkdir()
    fresh = mreg_repo(bench, bench.bucket(f"plain-{_slug(scenario)}"), folder / "plain")
    second(fresh / name)
    plain_s, _ = timed([bench.mreg, "add", name], fresh, bench.env)
    bench.done(folder)
    return Row(scenario, "mreg", sum(before.values()), sent, goal, add_s, plain_s)


def dvc_versions(
    bench: Bench, scenario: str, name: str, first: Version, second: Version, goal: float
) -> Row:
    assert bench.dvc is not None
    bucket = bench.bucket(f"dvc-{_slug(scenario)}")
    folder = bench.folder(f"dvc-{_slug(scenario)}")
    repo = dvc_repo(bench, bench.dvc, bucket, folder)
    first(repo / name)
    run([bench.dvc, "add", name], repo, bench.env)
    run([bench.dvc, "push"], repo, bench.env)
    git_commit(repo, bench.env, "v1")
    before = bucket_objects(bench.server, bucket)
    _replace(repo / name, second)
    add_s, _ = timed([bench.dvc, "add", name], repo, bench.env)
    run([bench.dvc, "push"], repo, bench.env)
    sent = uploaded_between(before, bucket_objects(bench.server, bucket))
    bench.done(folder)
    return Row(scenario, "dvc", sum(before.values()), sent, goal, add_s)


def _slug(scenario: str) -> str:
    """``scenario`` as a bucket or folder name."""
    return re.sub(r"[^a-z0-9]+", "-", scenario.lower()).strip("-")


def _replace(path: Path, version: Version) -> None:
    """Write ``version`` in place of ``path``, as a user's tool would (a new file or folder)."""
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    version(path)


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def _check_same(original: Path, restored: Path) -> None:
    if original.is_dir():
        for path in original.rglob("*"):
            twin = restored / path.relative_to(original)
            if path.is_file() and path.read_bytes() != twin.read_bytes():
                raise AssertionError(f"{restored} differs at {path.relative_to(original)}")
    elif not pq.read_table(original).equals(pq.read_table(restored)):
        raise AssertionError(f"{restored} holds other rows than {original}")


# -- scenarios --------------------------------------------------------------------------------


def rows_appended(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """1% rows appended to a parquet file in place (the file rewritten, then `mreg add`)."""
    table = make_table(args.rows, args.blob_bytes, seed=1)
    more = make_table(args.rows // 100, args.blob_bytes, seed=2, first_id=args.rows)
    grown = pa.concat_tables([table, more])

    def first(path: Path) -> None:
        pq.write_table(table, path)

    def second(path: Path) -> None:
        pq.write_table(grown, path)

    return two_versions(bench, "1% rows appended", "data.parquet", first, second, 0.02)


def rows_deleted(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """1% of the rows, scattered, deleted from the parquet file in place."""
    table = make_table(args.rows, args.blob_bytes, seed=1)
    rng = np.random.default_rng(3)
    dropped = np.zeros(args.rows, dtype=bool)
    dropped[rng.choice(args.rows, args.rows // 100, replace=False)] = True
    kept = table.filter(pa.array(~dropped))

    def first(path: Path) -> None:
        pq.write_table(table, path)

    def second(path: Path) -> None:
        pq.write_table(kept, path)

    return two_versions(bench, "1% rows deleted", "data.parquet", first, second, 0.01)


def _png(seed: int) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, size=(24, 24, 3), dtype=np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, format="PNG")
    return out.getvalue()


def images_added(bench: Bench, args: argparse.Namespace) -> list[Row]:
    """1% more images in a folder, spread over it (every 100th name gains a neighbour)."""
    images = {f"class{i % 10}/{i:06d}.png": _png(i) for i in range(args.images)}
    added = {
        f"class{i % 10}/{i:06d}-new.png": _png(args.images + i) for i in range(0, args.images, 100)
    }

    def write(files: dict[str, bytes]) -> Version:
        def version(path: Path) -> None:
            for relpath, data in files.items():
                (path / relpath).parent.mkdir(parents=True, exist_ok=True)
                (path / relpath).write_bytes(data)

        return version

    return two_versions(
        bench, "1% images added", "imgs", write(images), write({**images, **added}), 0.02
    )


SCENARIOS: list[Callable[[Bench, argparse.Namespace], list[Row]]] = [
    rows_appended,
    rows_deleted,
    images_added,
]


def report(rows: list[Row]) -> str:
    lines = [
        "| scenario | tool | first version | uploaded | share | goal | add | plain add |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        add = f"{r.add_s:.2f} s" if r.add_s else ""
        plain = f"{r.plain_add_s:.2f} s" if r.plain_add_s else ""
        lines.append(
            f"| {r.scenario} | {r.tool} | {r.artifact_bytes / 2**20:.2f} MiB | "
            f"{r.uploaded_bytes / 2**10:.1f} KiB | {r.share:.2%} | <= {r.goal:.0%} | {add} | "
            f"{plain} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20000)
    parser.add_argument("--blob-bytes", type=int, default=256, help="size of each row's blob")
    parser.add_argument("--images", type=int, default=20000)
    parser.add_argument("--skip-dvc", action="store_true")
    parser.add_argument("--only", help="run only the scenario function of this name")
    parser.add_argument("--keep", action="store_true", help="keep the work folders")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / ".work")
    args = parser.parse_args(argv)
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dvc = None if args.skip_dvc else ensure_dvc(work / "dvc-venv")
    snapshot = snapshot_mreg(work / "dedup")
    env = tool_env(snapshot)
    check_snapshot(env, snapshot)
    server = start_server(work / "seaweed-dedup")
    try:
        bench = Bench(server, work / "dedup", env, mreg_binary(), dvc, args.keep)
        rows: list[Row] = []
        for scenario in SCENARIOS:
            if args.only and scenario.__name__ != args.only:
                continue
            log(scenario.__name__)
            rows += scenario(bench, args)
    finally:
        server.stop()
    print(report(rows))
    missed = [r for r in rows if r.tool == "mreg" and r.share > r.goal]
    return 1 if missed else 0


if __name__ == "__main__":
    raise SystemExit(main())
