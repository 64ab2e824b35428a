"""A registered version records its lineage (code commit, data versions, command, seed,
Python/torch/mreg versions), and `mreg reproduce NAME@vX.Y.Z --check` verifies, before anything
runs, that the clone and the remote hold everything it names."""

from __future__ import annotations

import json
import shutil

from conftest import added, assert_refused, commit_all, git, make_safetensors, make_table

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


def test_without_check_the_recorded_command_is_shown_and_not_run(repo, run, remote_dir, tmp_path):
    registered(repo, run)
    marker = tmp_path / "ran"
    ModelRegistry(repo).register_model(
        "net", str(repo / "w.safetensors"), command=f"touch {marker}", version="v0.2.0"
    )
    result = run("reproduce", "net@v0.2.0")
    assert f"command touch {marker}" in result.stdout
    assert_refused(result, "does not run a recorded command")
    assert not marker.exists()


def test_a_version_without_a_code_commit_or_version_is_refused(repo, run):
    assert_refused(run("reproduce", "net"), "names no version")
