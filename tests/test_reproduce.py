"""A registered version records its lineage (code commit, data versions, command, seed,
Python/torch/mreg versions), and `mreg reproduce NAME@vX.Y.Z --check` verifies, before anything
runs, that the clone and the remote hold everything it names."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import added, assert_refused, commit_all, git, make_safetensors, make_table

from mreg.registry import ModelRegistry
from mreg.repo import Repo


def registered(repo, run):  # type: ignore[no-untyped-def]
    """Dataset ``t`` tagged t@v1.0.0, model ``net`` registered as trained on it (not pushed)."""
    make_table(repo / "t.parquet", rows=200)
    added(run, repo / "t.parquet")
    commit_all(repo, "data")
    assert run("tag", "t", "v1.0.0").exit_code == 0
    weights = make_safetensors(repo / "w.safetensors")
    entry = ModelRegistry(repo).register_model(
        "net",
        str(weights),
        training_dataset="t",
        command=["python", "train.py", "--seed", "7"],
        seed=7,
        performance_metrics={"accuracy": 0.9},
    )
    return entry


def test_registration_records_the_lineage(repo, run):
    entry = registered(repo, run)
    data_commit = git(repo, "rev-parse", f"{entry.tag}~1").strip()  # HEAD when registering
    meta = Repo(repo).target(entry.tag).manifest.meta
    assert meta["code_commit"] == data_commit
    assert json.loads(meta["lineage.data"]) == ["t@v1.0.0"]
    assert meta["lineage.command"] == "python train.py --seed 7"
    assert meta["lineage.seed"] == "7"
    assert meta["lineage.mreg"] and meta["lineage.python"].count(".") == 2
    assert "extra.command" not in meta and "extra.seed" not in meta


def test_reproduce_check_passes_when_the_remote_holds_every_data_version(repo, run, remote_dir):
    entry = registered(repo, run)
    assert run("push").exit_code == 0
    result = run("reproduce", entry.tag, "--check")
    assert result.exit_code == 0, result.stderr
    assert "data t@v1.0.0" in result.stdout and "command python train.py --seed 7" in result.stdout
    assert "every data version are available" in result.stdout


def test_a_data_version_missing_from_the_remote_fails_before_anything_runs(repo, run, remote_dir):
    entry = registered(repo, run)
    assert run("push").exit_code == 0
    shutil.rmtree(remote_dir)
    remote_dir.mkdir()
    line = assert_refused(run("reproduce", entry.tag, "--check"), "t@v1.0.0", "lacks", "mreg push")
    assert "nothing was run" in line


def test_without_yes_the_recorded_command_is_shown_and_not_run(repo, run, remote_dir, tmp_path):
    registered(repo, run)
    marker = tmp_path / "ran"
    ModelRegistry(repo).register_model(
        "net", str(repo / "w.safetensors"), command=f"touch {marker}", version="v0.2.0"
    )
    result = run("reproduce", "net@v0.2.0")
    assert f"command touch {marker}" in result.stdout
    assert_refused(result, "pass --yes")
    assert not marker.exists()


def test_a_version_without_a_code_commit_or_version_is_refused(repo, run):
    assert_refused(run("reproduce", "net"), "names no version")


TRAIN = """
import sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

seed, out = int(sys.argv[1]), Path(sys.argv[2])
rows = len(Path("t.parquet").read_bytes())  # the pulled data version is there
rng = np.random.default_rng(seed + rows)
tensors = {f"layers.{i}.weight": rng.standard_normal((16, 16), dtype=np.float32) for i in range(4)}
if len(sys.argv) > 3:  # a run that is not deterministic
    tensors["layers.0.weight"] += np.random.default_rng().standard_normal((16, 16), np.float32)
out.parent.mkdir(parents=True, exist_ok=True)
save_file(tensors, str(out))
"""


def trained_and_registered(repo, run, remote_dir, *extra: str):  # type: ignore[no-untyped-def]
    """train.py committed with tagged data; its output registered as net@v0.1.0; pushed."""
    import subprocess
    import sys

    make_table(repo / "t.parquet", rows=200)
    added(run, repo / "t.parquet")
    (repo / "train.py").write_text(TRAIN)
    commit_all(repo, "data and code")
    assert run("tag", "t", "v1.0.0").exit_code == 0
    subprocess.run([sys.executable, "train.py", "7", "out/w.safetensors"], cwd=repo, check=True)
    command = [sys.executable, "train.py", "7", "models/net/model.safetensors", *extra]
    ModelRegistry(repo).register_model(
        "net", str(repo / "out" / "w.safetensors"), training_dataset="t", command=command, seed=7
    )
    assert run("push").exit_code == 0


def test_reproduce_in_a_fresh_clone_runs_the_command_and_matches_every_digest(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    trained_and_registered(repo, run, remote_dir)
    clone = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    result = run("reproduce", "net@v0.1.0", "--yes")
    assert result.exit_code == 0, result.stderr
    assert "net@v0.1.0: reproduced, all 4 tensor digests equal" in result.stdout
    assert git(clone, "tag", "--list", "net@*").split() == ["net@v0.1.0"]  # nothing added here


def test_a_run_that_differs_exits_1_naming_how_many_tensors_differ(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    trained_and_registered(repo, run, remote_dir, "noise")
    result = run("reproduce", "net@v0.1.0", "--yes")
    assert result.exit_code == 1
    assert "1 of 4 tensor(s) differ" in result.stdout


@pytest.mark.slow
def test_the_demo_model_reproduced_in_a_fresh_clone_has_the_same_digests(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    commit_all(repo, "mreg set up, with its default remote")
    args = ("--steps", "3", "--batch", "32", "--limit", "200")
    result = run("demo", "train", "--offline", *args, "--cache", tmp_path / "downloads")
    assert result.exit_code == 0, result.stderr
    tag = "digits-resnet18@v0.1.0"
    meta = Repo(repo).target(tag).manifest.meta
    assert meta["lineage.command"].startswith("mreg demo train --offline --dataset digits")
    assert json.loads(meta["lineage.data"]) == ["digits-train@v1.0.0", "digits-test@v1.0.0"]

    clone = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    result = run("reproduce", tag, "--yes")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "reproduced, all" in result.stdout and "tensor digests equal" in result.stdout
