"""Faults of the local disk: full (a small tmpfs), read-only (a read-only bind mount: tests run
as root, whom chmod does not stop), the cache on another file system. Each is one line on
stderr naming what failed, a non-zero exit, a repository left consistent, and a re-run that
converges once the disk is fixed."""

from __future__ import annotations

import errno
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fault_tools import (
    Mounts,
    assert_cache_holds_only_good_files,
    clone,
    make_model,
    mount_refusal,
    recorded_files,
    temp_files,
)
from helpers import assert_refused, commit_all, git, make_table, snapshot

from mreg.errors import LocalIOError, StorageFull, local_fault


@pytest.fixture
def mounts() -> Iterator[Mounts]:
    """tmpfs and read-only bind mounts, undone at the end; skipped (with the reason) where
    mounts are not permitted: as root, chmod would not stop a write."""
    refusal = mount_refusal()
    if refusal:
        pytest.skip(refusal)
    made = Mounts()
    try:
        yield made
    finally:
        made.undo_all()


def added_and_pushed(repo: Path, run, names: dict[str, Path]) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    for path in names.values():
        assert run("add", str(path.relative_to(repo))).exit_code == 0
    commit_all(repo, "track")
    assert run("push").exit_code == 0
    return {name: path.read_bytes() for name, path in names.items()}


# -- the mapping itself --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "kind", "words"),
    [
        (errno.ENOSPC, StorageFull, "no space left on device writing"),
        (errno.EDQUOT, StorageFull, "quota"),
        (errno.EROFS, LocalIOError, "read-only file system"),
        (errno.EACCES, LocalIOError, "permission denied"),
        (errno.EIO, LocalIOError, "input/output error"),
    ],
)
def test_a_fault_of_local_storage_becomes_an_error_naming_the_path(code, kind, words):
    fault = local_fault(OSError(code, "os text", "/data/cache/file"))

    assert isinstance(fault, kind)
    assert words in str(fault) and "/data/cache/file" in str(fault)
    assert fault.hint


def test_lance_s_disk_full_text_is_recognised_and_named_with_the_folder_written():
    lance_error = OSError("LanceError(IO): No space left on device (os error 28), blob.rs:1093:9")

    fault = local_fault(lance_error, "/repo/.mreg/tmp")

    assert isinstance(fault, StorageFull)
    assert "no space left on device writing /repo/.mreg/tmp" in str(fault)


@pytest.mark.parametrize("code", [errno.ENOENT, errno.EBADF, errno.EINVAL, errno.EXDEV])
def test_other_os_errors_are_not_hidden_behind_a_sentence(code):
    assert local_fault(OSError(code, "text", "/x")) is None


# -- disk full -----------------------------------------------------------------------------


def test_add_on_a_full_disk_says_so_in_one_line_and_a_rerun_converges(repo, run, mounts):
    make_model(repo / "m.safetensors", tensors=8, kib=256)  # 2 MiB
    mounts.tmpfs(repo / ".mreg" / "tmp", "1m")
    before = snapshot(repo)

    result = run("add", "m.safetensors")

    assert_refused(result, "no space left on device writing", ".mreg/tmp")
    assert snapshot(repo) == before
    assert not (repo / "m.safetensors.mreg.toml").exists()
    mounts.undo(repo / ".mreg" / "tmp")
    assert run("add", "m.safetensors").exit_code == 0
    assert run("verify").exit_code == 0


def test_add_with_a_full_cache_disk_names_the_cache_and_keeps_no_manifest(repo, run, mounts):
    make_model(repo / "m.safetensors", tensors=8, kib=256)
    mounts.tmpfs(repo / ".mreg" / "cache", "1m")

    result = run("add", "m.safetensors")

    assert_refused(result, "no space left on device writing", ".mreg/cache")
    assert not (repo / "m.safetensors.mreg.toml").exists()
    assert temp_files(repo) == []
    mounts.undo(repo / ".mreg" / "cache")
    assert run("add", "m.safetensors").exit_code == 0
    assert run("verify").exit_code == 0


@pytest.fixture
def pushed_model(repo, run, remote_dir) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    (repo / "models").mkdir()
    make_model(repo / "models" / "m.safetensors", tensors=8, kib=256)
    return added_and_pushed(repo, run, {"models/m.safetensors": repo / "models/m.safetensors"})


def test_pull_into_a_full_work_tree_blames_the_work_tree_not_the_remote(
    repo, run, pushed_model, tmp_path, monkeypatch, mounts
):
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    manifest = (other / "models" / "m.safetensors.mreg.toml").read_bytes()
    mounts.tmpfs(other / "models", "1m")  # hides the checked-out folder: put the manifest back
    (other / "models" / "m.safetensors.mreg.toml").write_bytes(manifest)

    result = run("pull")

    line = assert_refused(result, "no space left on device writing", "models/m.safetensors")
    assert "cannot read" not in line and "remote" not in line
    assert temp_files(other) == []
    assert not (other / "models" / "m.safetensors").exists()
    assert_cache_holds_only_good_files(other, recorded_files(other))
    mounts.undo(other / "models")
    assert run("pull").exit_code == 0
    assert (other / "models" / "m.safetensors").read_bytes() == pushed_model["models/m.safetensors"]
    assert run("verify").exit_code == 0


def test_pull_from_s3_into_a_full_cache_names_the_local_folder_and_a_rerun_converges(
    repo, run, s3_remote, tmp_path, monkeypatch, mounts
):
    make_model(repo / "m.safetensors", tensors=8, kib=256)
    data = added_and_pushed(repo, run, {"m": repo / "m.safetensors"})
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    mounts.tmpfs(other / ".mreg" / "tmp", "512k")  # smaller than a download: lands there first

    result = run("pull")

    line = assert_refused(result, "no space left on device writing", ".mreg/tmp")
    assert "s3" not in line.split("(hint")[0]
    assert not (other / "m.safetensors").exists()
    assert_cache_holds_only_good_files(other, recorded_files(other))
    mounts.undo(other / ".mreg" / "tmp")
    assert run("pull").exit_code == 0
    assert (other / "m.safetensors").read_bytes() == data["m"]


def test_checkout_of_a_dataset_into_a_full_work_tree_names_the_file(repo, run, remote_dir, mounts):
    (repo / "tables").mkdir()
    make_table(repo / "tables" / "t.csv", rows=20_000)
    added_and_pushed(repo, run, {"t": repo / "tables" / "t.csv"})
    original = (repo / "tables" / "t.csv").read_bytes()
    manifest = (repo / "tables" / "t.csv.mreg.toml").read_bytes()
    mounts.tmpfs(repo / "tables", "64k")
    (repo / "tables" / "t.csv.mreg.toml").write_bytes(manifest)

    result = run("checkout")

    assert_refused(result, "no space left on device writing", "tables/t.csv")
    assert temp_files(repo) == []
    mounts.undo(repo / "tables")
    assert run("checkout", "--force").exit_code == 0
    assert (repo / "tables" / "t.csv").read_bytes() == original


# -- read-only ---------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["add", "checkout", "pull", "gc"])
def test_a_read_only_mreg_folder_refuses_writing_commands_in_one_line(
    command, repo, run, remote_dir, mounts: Mounts
):
    make_model(repo / "m.safetensors", kib=16)
    added_and_pushed(repo, run, {"m": repo / "m.safetensors"})
    (repo / "m.safetensors").unlink()
    args = {"add": ["add", "m.safetensors"], "gc": ["gc", "--force"]}.get(command, [command])
    mounts.read_only(repo / ".mreg")
    before = snapshot(repo)

    result = run(*args)

    assert_refused(result, "read-only file system", ".mreg")
    assert snapshot(repo) == before
    mounts.undo(repo / ".mreg")
    assert run("checkout").exit_code == 0
    assert run("verify").exit_code == 0


def test_status_and_verify_work_on_a_read_only_mreg_folder(repo, run, remote_dir, mounts):
    make_model(repo / "m.safetensors", kib=16)
    added_and_pushed(repo, run, {"m": repo / "m.safetensors"})
    (repo / "m.safetensors").write_bytes(b"changed")  # status must hash it, and cannot save
    mounts.read_only(repo / ".mreg")

    status = run("status")
    verify = run("verify")

    assert status.exit_code == 0, status.stderr
    assert "changed in workspace" in status.stdout
    assert verify.exit_code == 0, verify.stderr


def test_a_read_only_cache_makes_pull_name_the_cache(
    repo, run, remote_dir, tmp_path, monkeypatch, mounts
):
    make_model(repo / "m.safetensors", kib=16)
    data = added_and_pushed(repo, run, {"m": repo / "m.safetensors"})
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    (other / ".mreg" / "cache" / "data").mkdir(parents=True)
    mounts.read_only(other / ".mreg" / "cache")

    result = run("pull")

    assert_refused(result, "read-only file system", ".mreg/cache")
    assert not (other / "m.safetensors").exists()
    assert not any((other / ".mreg" / "cache" / "data").iterdir())
    mounts.undo(other / ".mreg" / "cache")
    assert run("pull").exit_code == 0
    assert (other / "m.safetensors").read_bytes() == data["m"]


# -- the cache on another file system ------------------------------------------------------


def test_a_cache_on_another_file_system_than_mreg_tmp_simply_works(
    repo, run, remote_dir, tmp_path, monkeypatch, mounts
):
    make_model(repo / "m.safetensors", tensors=4, kib=64)
    make_table(repo / "t.parquet", rows=500)
    mounts.tmpfs(repo / ".mreg" / "cache", "64m")
    data = added_and_pushed(repo, run, {"m": repo / "m.safetensors", "t": repo / "t.parquet"})
    assert run("verify").exit_code == 0
    shutil.rmtree(repo / ".mreg" / "cache" / "views", ignore_errors=True)
    (repo / "m.safetensors").unlink()
    (repo / "t.parquet").unlink()
    assert run("checkout").exit_code == 0  # rebuilds the dataset's view in the cache
    assert (repo / "m.safetensors").read_bytes() == data["m"]

    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    mounts.tmpfs(other / ".mreg" / "cache", "64m")
    result = run("pull")

    assert result.exit_code == 0, result.stderr
    assert (other / "m.safetensors").read_bytes() == data["m"]
    assert git(other, "status", "--porcelain").strip() == ""
    assert run("verify").exit_code == 0
