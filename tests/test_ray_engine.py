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
import mreg.repo.source_digest as source_digest

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


def pulled_in_a_clone(repo: Path, run, tmp_path: Path, monkeypatch, name: str | None) -> Path:  # type: ignore[no-untyped-def]
    """Commit the work tree, clone it, and in the clone (now the current folder) pull and verify
    ``name`` (None: everything); the clone's root."""
    commit_all(repo, "data")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    targets = [name] if name else []
    assert run("pull", *targets).exit_code == 0
    assert run("verify", *targets).exit_code == 0
    return clone


@pytest.mark.slow
def test_an_image_folder_added_through_ray_has_the_rows_and_manifest_of_a_local_add(
    repo, run, cluster, monkeypatch
):
    make_images(repo / "local", 5000)
    shutil.copytree(repo / "local", repo / "distributed")
    assert run("add", "local").exit_code == 0

    def unread(*args: object) -> None:
        raise AssertionError("the driver hashed the sources: the tasks return their digests")

    monkeypatch.setattr(source_digest, "sha256_listing", unread)
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
    clone = pulled_in_a_clone(repo, run, tmp_path, monkeypatch, None)
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
@pytest.mark.parametrize("data", ["cache", "s3 remote"])
def test_append_through_ray_adds_the_batch_rows_after_the_old_ones(
    repo, run, cluster, tmp_path, data, request
):
    if data == "s3 remote":  # the rows are on the remote only: the rewrite fetches them
        request.getfixturevalue("s3_remote")
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


def remote_objects(seaweed, bucket: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Every data object under the s3_remote fixture's prefix, by the path push would use."""
    prefix = "team/models/"
    pages = seaweed.client().get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    found = [item for page in pages for item in page.get("Contents", [])]
    return {item["Key"].removeprefix(prefix): int(item["Size"]) for item in found}


@pytest.mark.slow
def test_with_an_s3_remote_the_tasks_write_the_version_there_and_a_clone_pulls_it(
    repo, run, cluster, s3_remote, seaweed, s3_bucket, tmp_path, monkeypatch
):
    make_parquet_dir(repo / "local", 40_000)
    shutil.copytree(repo / "local", repo / "distributed")
    assert run("add", "local").exit_code == 0
    # The cluster started before the test set AWS_*: the workers get credentials from the driver.
    result = run("add", "distributed", "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.stderr
    files = {f["path"]: f["size"] for f in manifest(repo, "distributed")["lance"]["files"]}
    assert len(files) >= 2
    assert remote_objects(seaweed, s3_bucket) == files  # on the remote, and nothing else
    assert not any((repo / ".mreg" / "cache" / path).exists() for path in files)
    same_manifest_but_fragments(manifest(repo, "local"), manifest(repo, "distributed"))
    pushed = run("push", "distributed")
    assert pushed.exit_code == 0, pushed.stderr
    assert pushed.stdout.startswith("pushed 0 file(s)")
    clone = pulled_in_a_clone(repo, run, tmp_path, monkeypatch, "distributed")
    assert (
        pq.read_table(clone / "distributed")
        .sort_by("id")
        .equals(pq.read_table(repo / "local").sort_by("id"))
    )


@pytest.mark.slow
def test_a_failed_add_leaves_orphans_on_the_remote_that_gc_removes_and_a_re_run_converges(
    repo, run, cluster, s3_remote, seaweed, s3_bucket
):
    folder = make_images(repo / "photos", 400)
    broken = folder / "class3" / "00399.png"
    good = broken.read_bytes()
    broken.write_bytes(good[:20])
    # One worker: shard 1/2 is uploaded before shard 2/2 fails.
    result = run("add", "photos", "--engine", "ray", "--workers", "1")
    assert_one_line_error(result.stderr, "shard 2/2", "class3/00399.png")
    assert not (repo / "photos.mreg.toml").exists()
    orphans = remote_objects(seaweed, s3_bucket)
    assert orphans  # referenced by no manifest
    plain = run("gc", "--remote", "s3")  # the grace period spares what a teammate may push
    assert plain.exit_code == 0
    assert plain.stdout.startswith("0 file(s)")
    assert f"{len(orphans)} unreferenced file(s) younger than 7d kept" in plain.stderr
    listed = run("gc", "--remote", "s3", "--older-than", "0s")
    assert sorted(listed.stdout.splitlines()[:-1]) == sorted(orphans)
    assert run("gc", "--remote", "s3", "--older-than", "0s", "--force").exit_code == 0
    assert remote_objects(seaweed, s3_bucket) == {}
    broken.write_bytes(good)
    result = run("add", "photos", "--engine", "ray", "--workers", "1")
    assert result.exit_code == 0, result.stderr
    files = {f["path"]: f["size"] for f in manifest(repo, "photos")["lance"]["files"]}
    assert remote_objects(seaweed, s3_bucket) == files
    assert rows("photos").num_rows == 400
    collected = run("gc", "--remote", "s3", "--older-than", "0s")
    assert collected.stdout.startswith("0 file(s)")


def upload_folder(seaweed, bucket: str, folder: Path, prefix: str) -> str:  # type: ignore[no-untyped-def]
    """Every file of ``folder`` uploaded under ``prefix``; the s3:// URL of that prefix."""
    client = seaweed.client()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        client.upload_file(str(path), bucket, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return f"s3://{bucket}/{prefix}"


def same_manifest_from_s3(local: dict, from_s3: dict, url: str) -> None:
    """A local add's manifest but for the fragments and the source URL, which it records."""
    assert from_s3["source"].pop("url") == url
    same_manifest_but_fragments(local, from_s3)


@pytest.mark.slow
def test_an_s3_prefix_of_images_added_through_ray_has_the_rows_of_a_local_add_and_a_clone_pulls_it(
    repo, run, cluster, s3_remote, seaweed, s3_bucket, tmp_path, monkeypatch
):
    images = make_images(tmp_path / "photos", 300)
    url = upload_folder(seaweed, s3_bucket, images, "sources/photos")
    shutil.copytree(images, repo / "local")
    assert run("add", "local").exit_code == 0
    result = run("add", url, "--engine", "ray", "--workers", "2")
    assert result.exit_code == 0, result.stderr
    assert "300 rows" in result.stdout
    assert not (repo / "photos").exists()  # the data went from S3 to the remote, not here
    assert len(manifest(repo, "photos")["lance"]["fragments"]) >= 2
    same_manifest_from_s3(manifest(repo, "local"), manifest(repo, "photos"), url)
    clone = pulled_in_a_clone(repo, run, tmp_path, monkeypatch, "photos")
    assert rows("photos").equals(mreg.Repo(repo).open("local").to_table())
    pulled = sorted(p.relative_to(clone / "photos") for p in (clone / "photos").rglob("*.png"))
    assert pulled == sorted(p.relative_to(images) for p in images.rglob("*.png"))
    assert all(
        (clone / "photos" / rel).read_bytes() == (images / rel).read_bytes() for rel in pulled
    )


@pytest.mark.slow
def test_an_s3_prefix_of_parquet_files_added_through_ray_at_a_path_has_the_rows_of_a_local_add(
    repo, run, cluster, s3_remote, seaweed, s3_bucket, tmp_path
):
    table = make_parquet_dir(tmp_path / "table", 40_000)
    url = upload_folder(seaweed, s3_bucket, table, "exports/2024/table")
    shutil.copytree(table, repo / "local")
    assert run("add", "local").exit_code == 0
    (repo / "data").mkdir()
    result = run("add", f"{url}/", "data/events", "--name", "events", "--engine", "ray")
    assert result.exit_code == 0, result.stderr
    recorded = manifest(repo / "data", "events")
    assert recorded["name"] == "events"
    same_manifest_from_s3(manifest(repo, "local"), recorded, f"{url}/")
    assert rows("events").equals(rows("local"))


def test_an_s3_source_without_the_ray_engine_is_refused_in_one_line(repo, run):
    result = run("add", "s3://bucket/photos")
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, "s3://bucket/photos is in object storage", "--engine ray")
    assert not list(repo.glob("*.mreg.toml"))


@pytest.mark.parametrize(
    ("objects", "target", "message"),
    [
        ({"a.png": "images", "notes.txt": "text"}, None, "is not a folder of images or of Parquet"),
        ({}, None, "holds no objects"),
        ({"a.png": "images"}, "taken", "taken exists"),
    ],
)
def test_a_bad_s3_source_is_refused_in_one_line_and_nothing_is_written(
    repo, run, s3_remote, seaweed, s3_bucket, objects, target, message
):
    client = seaweed.client()
    for key, text in objects.items():
        client.put_object(Bucket=s3_bucket, Key=f"in/{key}", Body=text.encode())
    (repo / "taken").write_text("mine")
    before = remote_objects(seaweed, s3_bucket)
    args = [f"s3://{s3_bucket}/in", *([target] if target else []), "--engine", "ray"]
    result = run("add", *args)
    assert result.exit_code == 1
    assert_one_line_error(result.stderr, message)
    assert not list(repo.rglob("*.mreg.toml"))
    assert (repo / "taken").read_text() == "mine"
    assert remote_objects(seaweed, s3_bucket) == before


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
