"""The life of an artifact: add, share through a remote, version, roll back, review, clean up."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import commit_all, git, make_safetensors, make_table, make_tensors

import mreg
from mreg.errors import UsageError


def data_files(manifest_path: Path) -> set[str]:
    return {f["path"] for f in tomllib.loads(manifest_path.read_text())["lance"]["files"]}


def remote_files(remote: Path) -> set[str]:
    return {p.relative_to(remote).as_posix() for p in (remote / "data").rglob("*") if p.is_file()}


def test_init_twice_is_harmless_and_ignores_the_cache(repo, run):
    config = (repo / ".mreg" / "config.toml").read_text()
    assert run("init").exit_code == 0
    assert (repo / ".mreg" / "config.toml").read_text() == config
    ignored = (repo / ".mreg" / ".gitignore").read_text().split()
    assert "/cache/" in ignored and "/config.local.toml" in ignored


def test_add_ignores_the_artifact_and_leaves_the_manifest_for_git(repo, run):
    make_table(repo / "t.parquet")
    assert run("add", "t.parquet").exit_code == 0
    status = git(repo, "status", "--porcelain", "--untracked-files=all")
    assert "?? t.parquet.mreg.toml" in status.splitlines()
    assert "?? t.parquet" not in status.splitlines()
    assert "/t.parquet" in (repo / ".gitignore").read_text().splitlines()


def test_clone_and_pull_restores_every_artifact(repo, run, remote_dir, tmp_path):
    make_safetensors(repo / "m.safetensors")
    make_table(repo / "t.parquet", rows=300)
    assert run("add", "m.safetensors").exit_code == 0
    assert run("add", "t.parquet").exit_code == 0
    commit_all(repo, "add artifacts")
    assert run("push").exit_code == 0

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    import os

    os.chdir(clone)
    assert "missing from cache" in run("status").stdout
    result = run("pull")
    assert result.exit_code == 0, result.stderr

    assert (clone / "m.safetensors").read_bytes() == (repo / "m.safetensors").read_bytes()
    assert pq.read_table(clone / "t.parquet").equals(pq.read_table(repo / "t.parquet"))
    assert run("status").stdout.count("in sync") == 2
    assert run("verify").exit_code == 0


def test_re_adding_an_unchanged_file_pushes_nothing(repo, run, remote_dir):
    make_safetensors(repo / "m.safetensors")
    run("add", "m.safetensors")
    assert run("push").stdout.startswith("pushed 1 file(s)")
    before = remote_files(remote_dir)

    assert "unchanged" in run("add", "m.safetensors").stdout
    assert run("push").stdout.startswith("pushed 0 file(s)")
    assert remote_files(remote_dir) == before


def add_tagged_v1_then_v2(repo: Path, run) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    """Model ``m``: v1 committed and tagged m@v1.0.0, then v2 added; their data files."""
    make_safetensors(repo / "m.safetensors", seed=1)
    run("add", "m.safetensors")
    commit_all(repo, "v1")
    run("tag", "m", "v1.0.0")
    v1 = data_files(repo / "m.safetensors.mreg.toml")
    make_safetensors(repo / "m.safetensors", seed=2)
    run("add", "m.safetensors")
    return v1, data_files(repo / "m.safetensors.mreg.toml")


def test_a_plain_push_sends_the_data_of_every_tagged_version(repo, run, remote_dir):
    v1, v2 = add_tagged_v1_then_v2(repo, run)
    commit_all(repo, "v2")

    assert run("push").exit_code == 0
    assert v1 | v2 <= remote_files(remote_dir)


def test_push_all_also_sends_the_data_at_every_branch_tip(repo, run, remote_dir):
    make_safetensors(repo / "m.safetensors", seed=1)
    run("add", "m.safetensors")
    commit_all(repo, "experiment, never tagged")
    git(repo, "branch", "experiment")
    experiment = data_files(repo / "m.safetensors.mreg.toml")
    make_safetensors(repo / "m.safetensors", seed=2)
    run("add", "m.safetensors")
    commit_all(repo, "v2")

    assert run("push").exit_code == 0
    assert not experiment <= remote_files(remote_dir)
    assert run("push", "--all").exit_code == 0
    assert experiment <= remote_files(remote_dir)


def test_append_keeps_old_fragments_and_pushes_only_the_new_one(repo, run, remote_dir):
    make_table(repo / "t.parquet", rows=1000)
    run("add", "t.parquet")
    run("push")
    first = data_files(repo / "t.parquet.mreg.toml")

    make_table(repo / "more.parquet", rows=10, start=1000)
    result = run("add", "more.parquet", "--name", "t", "--mode", "append")
    assert result.exit_code == 0, result.stderr
    second = data_files(repo / "t.parquet.mreg.toml")
    assert first < second and len(second - first) == 1
    assert run("push").stdout.startswith("pushed 1 file(s)")

    table = mreg.open("t").to_table()
    assert table.num_rows == 1010
    assert table.column("id").to_pylist() == list(range(1010))
    # The work-tree file stands for the whole dataset after an append.
    assert pq.read_table(repo / "t.parquet").num_rows == 1010
    assert "in sync" in run("status").stdout


def test_changing_one_tensor_reuses_the_fragments_of_the_others(repo, run):
    from safetensors.numpy import save_file

    tensors = make_tensors(0, layers=40, width=64)
    save_file(tensors, str(repo / "m.safetensors"))
    run("add", "m.safetensors")
    manifest = repo / "m.safetensors.mreg.toml"
    first = data_files(manifest)
    assert len(first) > 2
    commit_all(repo, "v1")

    tensors["layers.7.weight"] = tensors["layers.7.weight"] + 1
    save_file(tensors, str(repo / "m.safetensors"))
    run("add", "m.safetensors")
    second = data_files(manifest)

    assert len(second - first) == 1
    diff = run("diff").stdout
    assert "~ tensor layers.7.weight: values changed" in diff
    assert diff.count("~ tensor") == 1


def test_tag_rollback_and_log(repo, run):
    make_table(repo / "t.parquet", rows=10)
    run("add", "t.parquet")
    commit_all(repo, "first version")
    assert run("tag", "t", "v1.0.0", "-m", "first").exit_code == 0
    make_table(repo / "more.parquet", rows=5, start=10)
    run("add", "more.parquet", "--name", "t", "--mode", "append")
    commit_all(repo, "second version")
    run("tag", "t", "v1.1.0")

    log = json.loads(run("log", "t", "--json").stdout)
    assert [e["tags"] for e in log] == [["t@v1.1.0"], ["t@v1.0.0"]]
    assert [e["rows"] for e in log] == [15, 10]

    result = run("checkout", "t@v1.0.0")
    assert result.exit_code == 0, result.stderr
    assert pq.read_table(repo / "t.parquet").num_rows == 10
    assert mreg.open("t").count_rows() == 10
    assert mreg.open("t", rev="v1.1.0").count_rows() == 15
    assert "t.parquet.mreg.toml" in git(repo, "status", "--porcelain")


def test_tag_refuses_duplicates(repo, run):
    make_table(repo / "t.parquet", rows=10)
    run("add", "t.parquet")
    commit_all(repo, "v1")
    assert run("tag", "t", "v1.0.0").exit_code == 0
    again = run("tag", "t", "v1.0.0")
    assert again.exit_code != 0
    assert "already exists" in again.stderr


def test_two_branches_with_new_versions_both_stay_readable(repo, run, remote_dir, tmp_path):
    make_table(repo / "t.parquet", rows=10)
    run("add", "t.parquet")
    commit_all(repo, "base")
    git(repo, "checkout", "-q", "-b", "left")
    make_table(repo / "l.parquet", rows=3, start=100)
    run("add", "l.parquet", "--name", "t", "--mode", "append")
    commit_all(repo, "left")
    run("push")
    git(repo, "checkout", "-q", "main")
    run("checkout")
    git(repo, "checkout", "-q", "-b", "right")
    make_table(repo / "r.parquet", rows=5, start=200)
    run("add", "r.parquet", "--name", "t", "--mode", "append")
    commit_all(repo, "right")
    run("push")

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    import os

    os.chdir(clone)
    left = mreg.open("t", rev="origin/left").to_table().column("id").to_pylist()
    right = mreg.open("t", rev="origin/right").to_table().column("id").to_pylist()
    assert left == [*range(10), 100, 101, 102]
    assert right == [*range(10), *range(200, 205)]


def test_a_name_finds_its_artifact_whatever_the_current_directory_holds(
    repo, run, tmp_path, monkeypatch
):
    make_table(repo / "t.parquet", rows=10)
    assert run("add", "t.parquet").exit_code == 0
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "t").mkdir(parents=True)  # named like the artifact, outside the repository
    make_table(elsewhere / "other.parquet")
    monkeypatch.chdir(elsewhere)

    assert mreg.open("t", repo=repo).count_rows() == 10
    with pytest.raises(UsageError, match=r"^other.parquet is outside the repository"):
        mreg.open("other.parquet", repo=repo)


def test_open_with_a_remote_reads_in_place_without_filling_the_cache(
    repo, run, remote_dir, tmp_path
):
    make_table(repo / "t.parquet", rows=300)
    assert run("add", "t.parquet").exit_code == 0
    commit_all(repo, "add t")
    assert run("push").exit_code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))

    in_place = mreg.open("t", repo=clone, remote="origin")

    assert in_place.to_table().equals(mreg.open("t").to_table())
    assert not list((clone / ".mreg" / "cache").glob("data/*"))


def test_diff_between_revisions_reads_git_only(repo, run):
    make_safetensors(repo / "m.safetensors", layers=2)
    make_table(repo / "t.parquet", rows=10)
    run("add", "m.safetensors")
    run("add", "t.parquet")
    first = commit_all(repo, "one")
    from safetensors.numpy import save_file

    tensors = make_tensors(0, layers=2)
    tensors["head.weight"] = np.ones((2, 16), dtype=np.float32)
    del tensors["layers.1.bias"]
    save_file(tensors, str(repo / "m.safetensors"))
    run("add", "m.safetensors")
    make_table(repo / "more.parquet", rows=4, start=10)
    run("add", "more.parquet", "--name", "t", "--mode", "append")
    second = commit_all(repo, "two")
    import shutil

    shutil.rmtree(repo / ".mreg" / "cache")

    result = run("diff", first, second, "--json")
    assert result.exit_code == 0, result.stderr
    changes = {c["name"]: c for c in json.loads(result.stdout)["changes"]}
    assert "+ tensor head.weight [2, 16] float32" in changes["m"]["details"]
    assert "- tensor layers.1.bias [16] float32" in changes["m"]["details"]
    assert "rows 10 -> 14 (+4)" in changes["t"]["details"]
    assert "+ 1 fragment(s), 4 rows" in changes["t"]["details"]


def test_status_names_changed_and_missing_files(repo, run):
    make_table(repo / "t.parquet", rows=10)
    make_safetensors(repo / "m.safetensors")
    run("add", "t.parquet")
    run("add", "m.safetensors")
    make_table(repo / "t.parquet", rows=11)
    (repo / "m.safetensors").unlink()

    states = {s["name"]: s["states"] for s in json.loads(run("status", "--json").stdout)}
    assert states == {"t": ["changed in workspace"], "m": ["missing from workspace"]}


def test_gc_keeps_data_of_every_branch_and_tag(repo, run):
    v1, v2 = add_tagged_v1_then_v2(repo, run)
    make_safetensors(repo / "m.safetensors", seed=3)
    run("add", "m.safetensors")  # v2 was never committed: its data are garbage now
    v3 = data_files(repo / "m.safetensors.mreg.toml")

    listed = json.loads(run("gc", "--json").stdout)
    assert set(listed["unused"]) == v2 - v1 - v3
    assert run("gc", "--force").exit_code == 0
    cache = repo / ".mreg" / "cache"
    assert all((cache / p).exists() for p in v1 | v3)
    assert not any((cache / p).exists() for p in v2 - v1 - v3)
    assert run("checkout", "m@v1.0.0").exit_code == 0


def test_python_api_matches_the_cli(repo):
    r = mreg.Repo(repo)
    make_safetensors(repo / "m.safetensors")
    result = r.add("m.safetensors", name="net", meta={"owner": "ml"})
    assert result.manifest.name == "net"
    assert [t.manifest.name for t in r.ls()] == ["net"]
    state = mreg.load_state_dict("net")
    for name, array in make_tensors(0).items():
        np.testing.assert_array_equal(state[name].numpy(), array)
    assert r.status()[0].in_sync
