"""Bad input: every refusal is one line on stderr that names the problem, a non-zero exit, no
traceback, and nothing changed on disk or on the remote."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import (
    Marker,
    added,
    assert_refused,
    commit_all,
    git,
    make_pth,
    make_safetensors,
    make_table,
    manifest_path,
    snapshot,
)

import mreg
from mreg.errors import UsageError

# -- helpers -------------------------------------------------------------------------------


def cache_files(repo: Path) -> list[Path]:
    return sorted(p for p in (repo / ".mreg" / "cache" / "data").rglob("*") if p.is_file())


# -- where mreg runs -------------------------------------------------------------------------


@pytest.mark.parametrize("command", [["init"], ["add", "m.safetensors"], ["status"]])
def test_outside_a_git_work_tree_every_command_says_to_run_git_init(
    tmp_path, monkeypatch, run, command
):
    plain = tmp_path / "plain"
    plain.mkdir()
    make_safetensors(plain / "m.safetensors")
    monkeypatch.chdir(plain)
    before = snapshot(plain)

    line = assert_refused(run(*command), "not inside a git work tree", "git init")

    assert str(plain) in line
    assert snapshot(plain) == before
    assert not (plain / ".mreg").exists()


@pytest.mark.parametrize("inside", [".git", ".git/refs/heads"])
def test_inside_the_git_folder_mreg_works_on_its_work_tree(repo, monkeypatch, run, inside):
    make_safetensors(repo / "m.safetensors")
    assert run("add", "m.safetensors").exit_code == 0
    monkeypatch.chdir(repo / inside)

    result = run("status")

    assert result.exit_code == 0, result.stderr
    assert "m (m.safetensors): in sync" in result.stdout


def test_a_git_work_tree_without_mreg_init_says_to_run_mreg_init(tmp_path, monkeypatch, run):
    root = tmp_path / "work"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    make_safetensors(root / "m.safetensors")
    monkeypatch.chdir(root)
    before = snapshot(root)

    assert_refused(run("add", "m.safetensors"), "not initialised", "mreg init")

    assert snapshot(root) == before
    assert not (root / ".mreg").exists()


# -- files mreg refuses to add ---------------------------------------------------------------


def test_an_unknown_suffix_is_tracked_as_opaque_bytes_naming_the_suffix(repo, run):
    (repo / "x.xyz").write_bytes(b"\x00\x01 not a model")

    result = run("add", "x.xyz")

    assert result.exit_code == 0, result.stderr
    assert "tracked as opaque chunks (blob): no format reads '.xyz'" in result.stdout


def test_an_unknown_forced_format_lists_the_known_ones(repo, run):
    make_safetensors(repo / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--format", "gguf"), "unknown format", "gguf")

    assert snapshot(repo) == before


def test_a_missing_file_is_refused(repo, run):
    before = snapshot(repo)

    assert_refused(run("add", "nothing.safetensors"), "nothing.safetensors", "no such file")

    assert snapshot(repo) == before


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


@pytest.mark.parametrize("keep", [0.5, 0.99], ids=["half", "last-bytes-missing"])
def test_a_truncated_safetensors_file_is_refused(repo, run, keep):
    truncate(make_safetensors(repo / "m.safetensors"), keep)
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors"), "m.safetensors", "truncated")

    assert snapshot(repo) == before
    assert not manifest_path(repo / "m.safetensors").exists()


def test_a_safetensors_file_with_a_garbled_header_is_refused(repo, run):
    path = make_safetensors(repo / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[8:16] = b"\xff\xfe{{{{{{"
    path.write_bytes(bytes(data))
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors"), "m.safetensors", "corrupt")

    assert snapshot(repo) == before


def test_a_truncated_pth_file_is_refused(repo, run):
    truncate(make_pth(repo / "m.pth"), 0.6)
    before = snapshot(repo)

    assert_refused(run("add", "m.pth"), "m.pth", "truncated")

    assert snapshot(repo) == before
    assert not manifest_path(repo / "m.pth").exists()


@pytest.mark.parametrize("force_unsafe", [False, True], ids=["default", "torch-override-set"])
def test_a_pth_holding_an_arbitrary_object_is_refused_and_runs_nothing(
    repo, run, tmp_path, monkeypatch, force_unsafe
):
    import torch

    marker = tmp_path / "pwned"
    torch.save({"weight": torch.zeros(3), "payload": Marker(marker)}, repo / "evil.pth")
    assert not marker.exists()
    if force_unsafe:
        monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    before = snapshot(repo)

    assert_refused(run("add", "evil.pth"), "evil.pth", "refused", "weights_only")

    assert not marker.exists()
    assert snapshot(repo) == before
    if force_unsafe:
        assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"


def test_a_truncated_parquet_file_is_refused(repo, run):
    truncate(make_table(repo / "t.parquet"), 0.7)
    before = snapshot(repo)

    assert_refused(run("add", "t.parquet"), "t.parquet", "parquet")

    assert snapshot(repo) == before
    assert not manifest_path(repo / "t.parquet").exists()


def test_a_parquet_file_with_a_corrupt_data_page_is_refused(repo, run):
    path = repo / "t.parquet"
    table = pa.table({"id": pa.array(range(5000), pa.int64())})
    pq.write_table(table, path, compression="snappy", use_dictionary=False)
    data = bytearray(path.read_bytes())
    # The column chunk starts right after the 4-byte magic: garble its page header and values.
    data[4:2004] = bytes(range(250)) * 8
    path.write_bytes(bytes(data))
    before = snapshot(repo)

    assert_refused(run("add", "t.parquet"), "t.parquet", "corrupt")

    assert snapshot(repo) == before
    assert not manifest_path(repo / "t.parquet").exists()


@pytest.mark.parametrize(
    "text",
    ["a,b\n1,2\n3\n", "a,b\n1,2\n3,4,5\n"],
    ids=["short-row", "long-row"],
)
def test_a_ragged_csv_is_refused(repo, run, text):
    (repo / "t.csv").write_text(text)
    before = snapshot(repo)

    assert_refused(run("add", "t.csv"), "t.csv", "not valid CSV", "columns")

    assert snapshot(repo) == before
    assert not manifest_path(repo / "t.csv").exists()


def test_a_csv_ragged_far_below_its_first_block_is_refused(repo, run):
    # 20 MiB of good rows: more than the reader's first 16 MiB block.
    rows = "".join(f"{i},{i * 2}\n" for i in range(1_600_000))
    (repo / "t.csv").write_text("a,b\n" + rows + "1,2,3\n")
    before = snapshot(repo)

    assert_refused(run("add", "t.csv"), "t.csv", "not valid CSV", "columns")

    assert snapshot(repo) == before
    assert not manifest_path(repo / "t.csv").exists()


def test_a_path_outside_the_repository_is_refused(repo, run, tmp_path):
    outside = make_safetensors(tmp_path / "elsewhere.safetensors")
    before = snapshot(repo)

    for spelled in (str(outside), "../elsewhere.safetensors"):
        assert_refused(run("add", spelled), "outside the repository")

    assert snapshot(repo) == before
    assert not manifest_path(outside).exists()


def test_a_file_inside_the_mreg_folder_is_refused(repo, run):
    make_safetensors(repo / ".mreg" / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", ".mreg/m.safetensors"), ".mreg")

    assert snapshot(repo) == before


# -- names -----------------------------------------------------------------------------------


def test_a_name_used_twice_is_refused_naming_the_first_owner(repo, run):
    make_safetensors(repo / "a.safetensors", seed=1)
    make_safetensors(repo / "b.safetensors", seed=2)
    added(run, repo / "a.safetensors", "--name", "shared")
    before = snapshot(repo)

    assert_refused(
        run("add", "b.safetensors", "--name", "shared"),
        "'shared'",
        "already used",
        "a.safetensors.mreg.toml",
        "--name",
    )

    assert snapshot(repo) == before


@pytest.mark.parametrize("name", ["has space", "a/b", "x@v1", "-leading", "dots..inside", "x.lock"])
def test_an_invalid_name_is_refused(repo, run, name):
    make_safetensors(repo / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--name", name), "not a valid artifact name")

    assert snapshot(repo) == before


def test_an_empty_name_is_refused_rather_than_replaced_by_the_file_name(repo, run):
    make_safetensors(repo / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--name", ""), "not a valid artifact name")

    assert snapshot(repo) == before


def test_an_unknown_kind_is_refused(repo, run):
    make_safetensors(repo / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--kind", "checkpoint"), "unknown kind")

    assert snapshot(repo) == before


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "checkpoint"}, "unknown kind 'checkpoint'"),
        ({"mode": "merge"}, "unknown mode 'merge'"),
        ({"name": "no spaces"}, "'no spaces' is not a valid artifact name"),
    ],
)
def test_python_add_and_import_refuse_bad_options_before_reading_anything(repo, options, message):  # type: ignore[no-untyped-def]
    """The options are checked once, when made: a bad one is refused before the path (which
    does not exist) is looked at, and before any download is tried."""
    before = snapshot(repo)
    with pytest.raises(UsageError, match=re.escape(message)):
        mreg.Repo(repo).add("nothing-here.parquet", **options)
    if "mode" not in options:
        with pytest.raises(UsageError, match=re.escape(message)):
            mreg.Repo(repo).import_url("http://127.0.0.1:9/x.parquet", **options)
    assert snapshot(repo) == before


def test_a_model_added_as_a_dataset_is_refused(repo, run):
    make_safetensors(repo / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--kind", "dataset"), "is a model", "not a dataset")

    assert snapshot(repo) == before


# -- manifests edited by hand ----------------------------------------------------------------


def edit_manifest(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


@pytest.mark.parametrize("command", ["checkout", "verify", "push", "status", "fetch"])
def test_a_manifest_pointing_outside_the_repository_is_refused_naming_it(
    repo, run, remote_dir, command
):
    manifest = added(run, make_safetensors(repo / "m.safetensors"))
    assert run("push").exit_code == 0
    (data_file,) = re.findall(r'path = "(data/[^"]+)"', manifest.read_text())
    edit_manifest(manifest, f'path = "{data_file}"', 'path = "../../../outside.lance"')
    (repo / "m.safetensors").unlink()
    before, remote_before = snapshot(repo), snapshot(remote_dir)

    assert_refused(run(command), "m.safetensors.mreg.toml", "outside the repository")

    assert snapshot(repo) == before
    assert snapshot(remote_dir) == remote_before
    assert not (repo.parent / "outside.lance").exists()


def test_a_manifest_whose_artifact_path_climbs_out_is_refused(repo, run):
    manifest = added(run, make_safetensors(repo / "m.safetensors"))
    edit_manifest(manifest, 'path = "m.safetensors"', 'path = "../m.safetensors"')
    (repo / "m.safetensors").unlink()
    before = snapshot(repo)

    assert_refused(run("checkout"), "m.safetensors.mreg.toml", "outside")

    assert snapshot(repo) == before
    assert not (repo.parent / "m.safetensors").exists()


def test_a_manifest_that_is_not_toml_is_refused_naming_it(repo, run):
    manifest = added(run, make_safetensors(repo / "m.safetensors"))
    manifest.write_text(manifest.read_text() + "\n[[[broken\n")
    before = snapshot(repo)

    assert_refused(run("status"), "m.safetensors.mreg.toml", "malformed")

    assert snapshot(repo) == before


def test_verify_names_a_file_whose_recorded_sha256_was_edited(repo, run):
    manifest = added(run, make_safetensors(repo / "m.safetensors"))
    (data_file,) = re.findall(r'path = "(data/[^"]+)"', manifest.read_text())
    (sha,) = re.findall(r'sha256 = "([0-9a-f]{64})" }', manifest.read_text())
    edit_manifest(manifest, sha, "0" * 64)
    before = snapshot(repo)

    result = run("verify")

    assert_refused(result, "1 file(s) missing or corrupt")
    assert data_file in result.stdout and "corrupt in cache" in result.stdout
    assert snapshot(repo) == before


def test_verify_finds_a_cache_file_with_flipped_bytes(repo, run):
    added(run, make_safetensors(repo / "m.safetensors"))
    (cached,) = cache_files(repo)
    data = bytearray(cached.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    cached.write_bytes(bytes(data))
    before = snapshot(repo)

    result = run("verify")

    assert_refused(result, "1 file(s) missing or corrupt")
    assert cached.relative_to(repo / ".mreg" / "cache").as_posix() in result.stdout
    assert "m: " in result.stdout and "corrupt in cache" in result.stdout
    assert snapshot(repo) == before


def test_checkout_without_the_data_in_the_cache_says_to_pull(repo, run):
    added(run, make_safetensors(repo / "m.safetensors"))
    shutil.rmtree(repo / ".mreg" / "cache")
    (repo / "m.safetensors").unlink()
    before = snapshot(repo)

    assert_refused(run("checkout"), "'m'", "not in the cache", "mreg pull")

    assert snapshot(repo) == before
    assert not (repo / "m.safetensors").exists()


# -- versions --------------------------------------------------------------------------------


@pytest.mark.parametrize("version", ["1.0.0", "v1.0", "v01.0.0", "latest", "v1.0.0-01", "v1.0.0+"])
def test_tag_with_an_invalid_version_is_refused(repo, run, version):
    added(run, make_safetensors(repo / "m.safetensors"))
    commit_all(repo, "add m")

    assert_refused(run("tag", "m", version), f"'{version}'", "not a version", "vMAJOR.MINOR.PATCH")

    assert git(repo, "tag", "--list") == ""


def test_tag_of_an_artifact_never_committed_is_refused(repo, run):
    added(run, make_safetensors(repo / "m.safetensors"))

    assert_refused(run("tag", "m", "v1.0.0"), "no committed artifact", "'m'", "commit")

    assert git(repo, "tag", "--list") == ""


def test_tag_of_an_artifact_with_uncommitted_changes_is_refused(repo, run):
    added(run, make_safetensors(repo / "m.safetensors", seed=1))
    commit_all(repo, "add m")
    added(run, make_safetensors(repo / "m.safetensors", seed=2))

    assert_refused(run("tag", "m", "v1.0.0"), "'m'", "uncommitted changes", "commit")

    assert git(repo, "tag", "--list") == ""


# -- append ----------------------------------------------------------------------------------


def test_append_with_different_columns_is_refused_naming_both_schemas(repo, run):
    added(run, make_table(repo / "t.parquet", rows=10))
    pq.write_table(pa.table({"id": [1, 2], "other": ["x", "y"]}), repo / "batch.parquet")
    before = snapshot(repo)

    line = assert_refused(
        run("add", "batch.parquet", "--name", "t", "--mode", "append"),
        "cannot append",
        "batch.parquet",
        "'t'",
        "differ",
    )

    assert "other" in line and "label" in line
    assert snapshot(repo) == before


def test_append_with_the_same_names_but_other_types_is_refused(repo, run):
    added(run, make_table(repo / "t.parquet", rows=10))
    pq.write_table(
        pa.table({"id": ["a"], "label": ["x"], "score": [1.0]}),
        repo / "batch.parquet",
    )
    before = snapshot(repo)

    assert_refused(
        run("add", "batch.parquet", "--name", "t", "--mode", "append"), "cannot append", "differ"
    )

    assert snapshot(repo) == before


def test_append_on_a_model_file_is_refused(repo, run):
    added(run, make_safetensors(repo / "m.safetensors"))
    make_safetensors(repo / "m.safetensors", seed=5)
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--mode", "append"), "append", "overwrite")

    assert snapshot(repo) == before


def test_appending_rows_to_a_model_artifact_is_refused(repo, run):
    added(run, make_safetensors(repo / "m.safetensors"))
    make_table(repo / "rows.parquet")
    before = snapshot(repo)

    assert_refused(
        run("add", "rows.parquet", "--name", "m", "--mode", "append"), "'m' is a model", "append"
    )

    assert snapshot(repo) == before


def test_an_unknown_mode_is_refused(repo, run):
    make_table(repo / "t.parquet")
    before = snapshot(repo)

    assert_refused(run("add", "t.parquet", "--mode", "merge"), "unknown mode", "merge")

    assert snapshot(repo) == before


# -- remotes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["push", "fetch", "pull"])
def test_transfers_without_a_remote_say_how_to_add_one(repo, run, tmp_path, command):
    added(run, make_safetensors(repo / "m.safetensors"))
    commit_all(repo, "add m")
    if command != "push":
        shutil.rmtree(repo / ".mreg" / "cache")
    before = snapshot(repo)

    assert_refused(run(command), "no remote", "mreg remote add")

    assert snapshot(repo) == before


@pytest.mark.parametrize("command", ["push", "fetch", "verify", "gc", "status"])
def test_an_unknown_remote_name_is_refused(repo, run, remote_dir, command):
    added(run, make_safetensors(repo / "m.safetensors"))
    commit_all(repo, "add m")
    if command == "fetch":
        shutil.rmtree(repo / ".mreg" / "cache")
    before = snapshot(repo)

    assert_refused(run(command, "-r", "nope"), "remote 'nope'", "not configured")

    assert snapshot(repo) == before
    assert not remote_dir.exists()


def test_adding_a_remote_twice_is_refused(repo, run, remote_dir):
    config = (repo / ".mreg" / "config.toml").read_text()

    assert_refused(run("remote", "add", "origin", "/elsewhere"), "'origin'", "already exists")

    assert (repo / ".mreg" / "config.toml").read_text() == config


# -- help ------------------------------------------------------------------------------------

COMMANDS = [
    "init", "add", "ls", "show", "status", "push", "fetch", "pull", "checkout", "verify", "gc",
    "tag", "log", "diff", "remote",
]  # fmt: skip


def test_help_lists_every_command(run):
    result = run("--help")

    assert result.exit_code == 0, result.stderr
    for command in COMMANDS:
        assert re.search(rf"\b{command}\b", result.stdout), command


@pytest.mark.parametrize(
    "command",
    [[c] for c in COMMANDS] + [["remote", "add"], ["remote", "list"], ["remote", "remove"]],
    ids=lambda c: " ".join(c),
)
def test_every_command_has_help_that_exits_zero(tmp_path, monkeypatch, run, command):
    monkeypatch.chdir(tmp_path)

    result = run(*command, "--help")

    assert result.exit_code == 0, result.stderr
    assert "Usage" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_the_console_script_reports_errors_on_one_line(tmp_path):
    mreg = shutil.which("mreg")
    assert mreg is not None
    done = subprocess.run([mreg, "status"], cwd=tmp_path, capture_output=True, text=True)

    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert done.stderr.startswith("error:") and "git init" in done.stderr


def test_a_deleted_current_directory_is_a_clear_error(tmp_path, run, monkeypatch):
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()

    assert_refused(run("status"), "the current directory no longer exists")
