"""`mreg add --engine ray` and `mreg.ray.dataset` on a real Ray cluster started on this machine
(2 CPUs, one for the whole module).

Rows are compared in order: a Ray add reads contiguous shards of the sorted input and numbers
their fragments in shard order, so only the fragment boundaries differ from a local add."""

from __future__ import annotations

import io
import shutil
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import assert_one_line_error, commit_all, git

import mreg

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    """One local Ray cluster (2 CPUs) for the module; its workers import this mreg."""
    package_root = str(Path(mreg.__file__).resolve().parents[1])
    ray.init(
        num_cpus=2,
        address="local",
        include_dashboard=False,
        log_to_driver=False,
        runtime_env={"env_vars": {"PYTHONPATH": package_root}},
    )
    yield
    ray.shutdown()


def make_images(folder: Path, count: int, classes: int = 4) -> Path:
    """``count`` small 8x8 PNGs in ``classes`` class folders, each image different."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for n in range(count):
        target = folder / f"class{n % classes}" / f"{n:05d}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(pixels).save(buffer, format="PNG")
        target.write_bytes(buffer.getvalue())
    return folder


def make_parquet_dir(folder: Path, rows: int, files: int = 4) -> Path:
    folder.mkdir(parents=True)
    per_file = rows // files
    for n in range(files):
        start = n * per_file
        ids = np.arange(start, start + per_file, dtype=np.int64)
        table = pa.table({"id": ids, "value": ids * 0.5, "name": [f"row-{i}" for i in ids]})
        pq.write_table(table, folder / f"part-{n}.parquet")
    return folder


def manifest(root: Path, artifact: str) -> dict:
    return tomllib.loads((root / f"{artifact}.mreg.toml").read_text())


def rows(name: str, rev: str | None = None) -> pa.Table:
    return mreg.Repo(".").open(name, rev).to_table()


def same_manifest_but_fragments(local: dict, distributed: dict) -> None:
    """Equal but for the name, the path and Lance's own files (fragments, data files)."""
    for key in ("name", "path"):
        local.pop(key)
        distributed.pop(key)
    for key in ("fragments", "files"):
        local["lance"].pop(key)
        distributed["lance"].pop(key)
    assert local == distributed


@pytest.mark.slow
def test_an_image_folder_added_through_ray_has_the_rows_and_manifest_of_a_local_add(
    repo, run, cluster
):
    make_images(repo / "local", 5000)
    shutil.copytree(repo / "local", repo / "distributed")
    assert run("add", "local").exit_code == 0
    result = run("add", "distributed", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.stderr
    assert "5,000 rows" in result.stdout
    assert rows("distributed").equals(rows("local"))
    local, distributed = manifest(repo, "local"), manifest(repo, "distributed")
    assert len(distributed["lance"]["fragments"]) >= 2  # one per shard at least: it was split
    same_manifest_but_fragments(local, distributed)


@pytest.mark.slow
def test_a_parquet_folder_added_through_ray_has_the_rows_of_a_local_add_and_a_clone_pulls_it(
    repo, run, cluster, remote_dir, tmp_path, monkeypatch
):
    make_parquet_dir(repo / "local", 200_000)
    shutil.copytree(repo / "local", repo / "distributed")
    assert run("add", "local").exit_code == 0
    result = run("add", "distributed", "--engine", "ray")
    assert result.exit_code == 0, result.stderr
    table = rows("distributed")
    assert table.num_rows == 200_000
    assert table.equals(rows("local"))
    same_manifest_but_fragments(manifest(repo, "local"), manifest(repo, "distributed"))
    assert run("push").exit_code == 0
    commit_all(repo, "two tables")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    assert run("pull").exit_code == 0
    assert run("verify").exit_code == 0
    assert (
        pq.read_table(clone / "distributed")
        .sort_by("id")
        .equals(pq.read_table(repo / "local").sort_by("id"))
    )


@pytest.mark.slow
def test_a_failing_shard_is_named_nothing_is_recorded_and_a_re_run_succeeds(repo, run, cluster):
    folder = make_images(repo / "photos", 400)
    broken = folder / "class3" / "00399.png"
    good = broken.read_bytes()
    broken.write_bytes(good[:20])
    result = run("add", "photos", "--engine", "ray", "--workers", "2")
    assert result.exit_code != 0
    line = assert_one_line_error(result.stderr, "shard 4/4", "class3/00399.png")
    assert "photos/class3/00399.png" in line
    assert not (repo / "photos.mreg.toml").exists()
    assert not list((repo / ".mreg" / "cache").glob("data/*"))
    broken.write_bytes(good)
    result = run("add", "photos", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.stderr
    assert rows("photos").num_rows == 400


@pytest.mark.slow
def test_append_through_ray_adds_the_batch_rows_after_the_old_ones(repo, run, cluster, tmp_path):
    make_parquet_dir(repo / "table", 40_000)
    assert run("add", "table", "--engine", "ray").exit_code == 0
    batch = tmp_path / "batch"
    batch.mkdir()
    ids = np.arange(40_000, 41_000, dtype=np.int64)
    new = pa.table({"id": ids, "value": ids * 0.5, "name": [f"row-{i}" for i in ids]})
    pq.write_table(new, batch / "part-0.parquet")
    result = run("add", str(batch), "--name", "table", "--mode", "append", "--engine", "ray")
    assert result.exit_code == 0, result.stderr
    assert rows("table").column("id").to_pylist() == list(range(41_000))


@pytest.mark.slow
def test_ray_dataset_at_an_older_tag_reads_the_older_rows_decoded(repo, run, cluster):
    import mreg.ray

    make_images(repo / "photos", 64)
    assert run("add", "photos", "--engine", "ray").exit_code == 0
    commit_all(repo, "64 photos")
    git(repo, "tag", "photos-v1")
    make_images(repo / "more", 32, classes=2)
    for image in (repo / "more").rglob("*.png"):
        target = repo / "photos" / image.relative_to(repo / "more").parent / f"x{image.name}"
        shutil.copy(image, target)
    assert run("add", "photos").exit_code == 0
    commit_all(repo, "96 photos")
    old = mreg.ray.dataset("photos", rev="photos-v1").take_all()
    assert len(old) == 64
    assert old[0]["image"].shape == (8, 8, 3) and old[0]["image"].dtype == np.uint8
    assert sorted({row["label"] for row in old}) == [0, 1, 2, 3]
    assert len(mreg.ray.dataset("photos", columns=["label"]).take_all()) == 96


def test_engine_ray_with_a_model_is_refused_in_one_line(repo, run, cluster):
    from helpers import make_safetensors

    make_safetensors(repo / "model.safetensors")
    result = run("add", "model.safetensors", "--engine", "ray")
    assert_one_line_error(result.stderr, "is a model", "datasets")
    assert not (repo / "model.safetensors.mreg.toml").exists()


def test_an_unknown_engine_is_refused_in_one_line(repo, run):
    make_parquet_dir(repo / "table", 100)
    result = run("add", "table", "--engine", "spark")
    assert_one_line_error(result.stderr, "unknown engine 'spark'")


def test_an_address_where_no_cluster_answers_is_refused_at_once_in_one_line(repo):
    make_parquet_dir(repo / "table", 100)
    with socket.socket() as s:  # a port that was free a moment ago: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A process of its own: this one is connected to the module's cluster already.
    command = [sys.executable, "-c", "from mreg.cli import script; script()", "add", "table"]
    command += ["--engine", "ray", "--address", f"127.0.0.1:{port}"]
    result = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert_one_line_error(result.stderr, f"no Ray cluster answers at 127.0.0.1:{port}")
    assert not (repo / "table.mreg.toml").exists()
