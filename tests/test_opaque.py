"""Any file or folder, not only the formats mreg understands: opaque bytes in content-defined
chunks, restored byte for byte, and a change in the middle of a large file costs its chunks."""

from __future__ import annotations

import hashlib
import os
import pickle
import stat
import tomllib
from pathlib import Path

import numpy as np
import pytest
from helpers import (
    Marker,
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    manifest_path,
    restore_from_cache,
    snapshot,
)

import mreg
from mreg.errors import UsageError


def manifest_of(artifact: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(manifest_path(artifact).read_text())


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(root: Path) -> dict[str, tuple[bytes, bool]]:
    """Every file under ``root``: its bytes and whether its owner may execute it."""
    return {
        p.relative_to(root).as_posix(): (p.read_bytes(), bool(p.stat().st_mode & stat.S_IXUSR))
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def clone_of(repo: Path, tmp_path: Path, run) -> Path:  # type: ignore[no-untyped-def]
    """A git clone of ``repo`` as the current directory, after ``mreg pull``."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    os.chdir(clone)
    result = run("pull")
    assert result.exit_code == 0, result.stderr
    return clone


# -- single files ------------------------------------------------------------------------------


def test_a_npy_file_is_tracked_as_opaque_chunks_and_restored_byte_for_byte(repo, run):
    array = np.arange(3_000_000, dtype=np.float64).reshape(1000, 3000)
    np.save(repo / "features.npy", array)
    original = (repo / "features.npy").read_bytes()

    result = run("add", "features.npy")

    assert result.exit_code == 0, result.stderr
    assert "tracked as opaque chunks" in result.stdout and "'.npy'" in result.stdout
    manifest = manifest_of(repo / "features.npy")
    assert manifest["source"]["format"] == "blob"
    assert manifest["source"]["restore"] == "exact"
    assert manifest["source"]["size"] == len(original)
    assert manifest["source"]["sha256"] == hashlib.sha256(original).hexdigest()
    chunks = manifest["model"]["chunks"]
    assert len(chunks) > 3  # 24 MB in content-defined chunks of about 1 MiB
    assert sum(c["size"] for c in chunks) == len(original)
    restore_from_cache(repo, run, "features.npy")
    assert (repo / "features.npy").read_bytes() == original
    assert np.array_equal(np.load(repo / "features.npy"), array)
    assert "in sync" in run("status").stdout


def test_a_pickle_is_kept_as_bytes_and_never_unpickled(repo, run, tmp_path):
    marker = tmp_path / "unpickled"
    (repo / "model.pkl").write_bytes(pickle.dumps({"weights": [1.0, 2.0], "hook": Marker(marker)}))
    original = (repo / "model.pkl").read_bytes()

    result = run("add", "model.pkl")
    assert result.exit_code == 0, result.stderr
    assert "'.pkl'" in result.stdout
    commit_all(repo, "pickle")
    restore_from_cache(repo, run, "model.pkl")
    assert run("show", "model").exit_code == 0
    assert run("diff").exit_code == 0
    assert run("verify").exit_code == 0

    assert (repo / "model.pkl").read_bytes() == original
    assert not marker.exists()  # the pickle's __reduce__ payload never ran
    assert "in sync" in run("status").stdout


def test_an_empty_file_round_trips(repo, run):
    (repo / "EMPTY").write_bytes(b"")

    result = run("add", "EMPTY")

    assert result.exit_code == 0, result.stderr
    assert "no suffix" in result.stdout
    restore_from_cache(repo, run, "EMPTY")
    assert (repo / "EMPTY").read_bytes() == b""


def test_format_blob_forces_opaque_bytes_for_a_known_suffix(repo, run):
    path = make_safetensors(repo / "m.safetensors")
    original = path.read_bytes()

    result = run("add", "m.safetensors", "--format", "blob")

    assert result.exit_code == 0, result.stderr
    assert "tracked as opaque chunks" in result.stdout and "--format blob" in result.stdout
    assert manifest_of(path)["source"]["format"] == "blob"
    assert "opaque bytes: 1 content-defined chunks" in run("show", "m").stdout
    restore_from_cache(repo, run, "m.safetensors")
    assert path.read_bytes() == original


def test_a_format_mreg_reads_still_takes_its_own_path(repo, run):
    make_safetensors(repo / "m.safetensors")

    result = run("add", "m.safetensors")

    assert result.exit_code == 0, result.stderr
    assert "model from safetensors" in result.stdout
    assert "opaque" not in result.stdout


def test_opaque_bytes_are_not_tensors(repo, run):
    (repo / "weights.bin").write_bytes(os.urandom(1000))
    assert run("add", "weights.bin").exit_code == 0

    with pytest.raises(UsageError, match="opaque bytes"):
        mreg.Repo(repo).load_state_dict("weights")


# -- folders -----------------------------------------------------------------------------------


def make_mixed_folder(root: Path) -> Path:
    """Nested folders, an empty file, binary data, text, an executable script, a pickle."""
    rng = np.random.default_rng(7)
    (root / "nested" / "deeper").mkdir(parents=True)
    (root / "empty.txt").write_bytes(b"")
    (root / "nested" / "blob.bin").write_bytes(rng.bytes(3 << 20))
    (root / "nested" / "deeper" / "tokenizer.json").write_text('{"model": {"vocab": {"a": 0}}}')
    (root / "nested" / "deeper" / "notes.md").write_text("# notes\r\nmixed\nline endings")
    (root / "run.sh").write_text("#!/bin/sh\necho trained\n")
    (root / "run.sh").chmod(0o755)
    np.save(root / "nested" / "x.npy", rng.standard_normal(1000))
    return root


def test_a_folder_of_mixed_files_round_trips_through_a_remote(repo, run, remote_dir, tmp_path):
    folder = make_mixed_folder(repo / "bundle")
    before = tree(folder)

    result = run("add", "bundle")
    assert result.exit_code == 0, result.stderr
    assert "tracked as opaque chunks" in result.stdout and "bundle/" in result.stdout
    manifest = manifest_of(folder)
    assert manifest["source"]["format"] == "blob_dir"
    assert "/bundle" in (repo / ".gitignore").read_text().splitlines()
    commit_all(repo, "bundle")
    assert run("push").exit_code == 0

    clone = clone_of(repo, tmp_path, run)

    assert tree(clone / "bundle") == before
    assert "in sync" in run("status").stdout


def test_an_opaque_folder_diff_lists_files_added_removed_and_changed(repo, run):
    folder = make_mixed_folder(repo / "bundle")
    assert run("add", "bundle").exit_code == 0
    commit_all(repo, "v1")
    (folder / "empty.txt").unlink()
    (folder / "new.txt").write_text("new")
    blob = bytearray((folder / "nested" / "blob.bin").read_bytes())
    blob[1 << 20 : (1 << 20) + 10] = b"x" * 10
    (folder / "nested" / "blob.bin").write_bytes(bytes(blob))
    assert run("add", "bundle").exit_code == 0

    out = run("diff").stdout

    assert "+ file bundle/new.txt (3 bytes)" in out
    assert "- file bundle/empty.txt (0 bytes)" in out
    assert "~ file bundle/nested/blob.bin: 3,145,728 -> 3,145,728 bytes, 1 of" in out
    assert "bundle/run.sh" not in out


def test_a_link_in_an_opaque_folder_is_refused_naming_it(repo, run, tmp_path):
    make_mixed_folder(repo / "bundle")
    (tmp_path / "secret").write_text("outside")
    (repo / "bundle" / "escape").symlink_to(tmp_path / "secret")
    before = snapshot(repo)

    assert_refused(run("add", "bundle"), "bundle/escape", "symbolic link")

    assert snapshot(repo) == before


def test_an_empty_folder_is_still_refused(repo, run):
    (repo / "nothing" / "inside").mkdir(parents=True)
    before = snapshot(repo)

    assert_refused(run("add", "nothing"), "nothing/", "no format mreg knows")
    assert_refused(run("add", "nothing", "--format", "blob_dir"), "nothing/", "holds no files")

    assert snapshot(repo) == before


# -- a large file changed in its middle --------------------------------------------------------


@pytest.mark.slow
def test_a_middle_change_in_a_large_file_pushes_about_the_changed_chunks(
    repo, run, s3_remote, tmp_path
):
    size = 200 << 20
    path = repo / "big.ckpt"
    path.write_bytes(np.random.default_rng(1).bytes(size))
    assert run("add", "big.ckpt").exit_code == 0
    commit_all(repo, "v1")
    first = mreg.Repo(repo).push()
    assert first.bytes >= size
    v1 = path.read_bytes()

    with open(path, "r+b") as handle:  # 1 MiB overwritten in the middle
        handle.seek(size // 2)
        handle.write(np.random.default_rng(2).bytes(1 << 20))
    v2_sha = sha256(path)
    result = run("add", "big.ckpt")
    assert result.exit_code == 0, result.stderr
    commit_all(repo, "v2")
    second = mreg.Repo(repo).push()

    assert second.bytes < size // 10, second  # about the changed chunks, not the file
    diff = run("diff", "HEAD~1", "HEAD").stdout
    assert "~ file big.ckpt: 209,715,200 -> 209,715,200 bytes" in diff
    clone = clone_of(repo, tmp_path, run)
    assert sha256(clone / "big.ckpt") == v2_sha
    assert "in sync" in run("status").stdout
    assert run("pull", "big@HEAD~1").exit_code == 0  # fetches only the old version's chunks
    assert (clone / "big.ckpt").read_bytes() == v1


def test_a_json_file_that_is_no_table_names_the_way_to_keep_it_as_bytes(repo, run):
    path = repo / "tokenizer.json"
    path.write_text('{"model": {"type": "BPE", "vocab": {"a": 0}}}')
    before = snapshot(repo)

    assert_refused(run("add", "tokenizer.json"), "not an array of objects", "--format blob")
    assert snapshot(repo) == before
    result = run("add", "tokenizer.json", "--format", "blob")

    assert result.exit_code == 0, result.stderr
    restore_from_cache(repo, run, "tokenizer.json")
    assert path.read_text() == '{"model": {"type": "BPE", "vocab": {"a": 0}}}'


@pytest.mark.parametrize("name", [b"back\\slash", b"latin-\xe9"], ids=["backslash", "not-utf8"])
def test_a_file_name_no_manifest_can_hold_is_refused_naming_it(repo, run, name):
    make_mixed_folder(repo / "bundle")
    with open(os.path.join(bytes(repo / "bundle"), name), "wb") as handle:
        handle.write(b"data")
    before = snapshot(repo)

    assert_refused(run("add", "bundle"), "bundle/", "refused" if b"\\" in name else "UTF-8")

    assert snapshot(repo) == before
