"""Checkout trusts only cache files checked on the way in, and writes exact files by assembly."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_refused, commit_all, git
from safetensors.numpy import save_file

import mreg
from mreg.converters.base import TensorRecord, write_tensor

BIG = (512, 512)  # 1 MiB of float32: Lance keeps it in a blob file of its own


def make_model(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    save_file(
        {
            "encoder.weight": rng.standard_normal(BIG, dtype=np.float32),
            "encoder.bias": rng.standard_normal(16, dtype=np.float32),
        },
        str(path),
    )
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def whole_tensor_file(repo: Path, manifest: Path) -> Path:
    """The cache file holding exactly the big tensor's bytes."""
    document = tomllib.loads(manifest.read_text())
    digest = next(
        t["digest"] for t in document["model"]["tensors"] if t["name"] == "encoder.weight"
    )
    path = next(f["path"] for f in document["lance"]["files"] if f["sha256"] == digest)
    return repo / ".mreg" / "cache" / path


def flip_a_byte(path: Path) -> None:
    """Change one byte in place: same size, new content."""
    with open(path, "r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))


def pushed_clone(repo: Path, run, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """The repo with a model pushed to its default remote, cloned: an empty cache."""
    make_model(repo / "m.safetensors")
    assert run("add", "m.safetensors").exit_code == 0
    assert run("push").exit_code == 0
    commit_all(repo, "model")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    return clone


def test_fetched_files_are_known_checked_until_they_change(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    clone = pushed_clone(repo, run, tmp_path)
    monkeypatch.chdir(clone)
    assert run("fetch").exit_code == 0
    fetched = mreg.Repo(clone)
    (target,) = fetched.ls()
    assert all(fetched.cache.is_checked(entry) for entry in target.manifest.files)

    flip_a_byte(whole_tensor_file(clone, clone / "m.safetensors.mreg.toml"))
    changed = mreg.Repo(clone)
    assert not all(changed.cache.is_checked(entry) for entry in target.manifest.files)


def test_an_exact_restore_is_the_original_and_status_does_not_hash_it_again(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    clone = pushed_clone(repo, run, tmp_path)
    original = sha256(repo / "m.safetensors")
    monkeypatch.chdir(clone)
    assert run("pull").exit_code == 0
    assert sha256(clone / "m.safetensors") == original
    # Checkout remembers the digest with the file's size, mtime and inode.
    assert mreg.Repo(clone).state.known_sha256("m.safetensors") == original
    assert "in sync" in run("status").stdout


def test_an_exact_restore_of_whole_cached_tensors_never_loads_lance_or_arrow(repo, run):
    """Every tensor bigger than Lance's blob threshold lies whole in a cached file: checkout
    copies those files and has no reason to import Lance (about 0.35 s of start-up), nor
    pyarrow and numpy (0.1 s more)."""
    save_file({"big": np.ones(BIG, dtype=np.float32)}, str(repo / "m.safetensors"))
    original = sha256(repo / "m.safetensors")
    assert run("add", "m.safetensors").exit_code == 0
    (repo / "m.safetensors").unlink()

    code = (
        "import sys\n"
        "import mreg.cli\n"
        "try:\n"
        "    mreg.cli.main(['checkout'])\n"
        "except SystemExit as exit:\n"
        "    assert not exit.code, exit\n"
        "print(sorted(set(sys.modules) & {'lance', 'pyarrow', 'numpy'}))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert sha256(repo / "m.safetensors") == original


def test_checkout_refuses_a_cache_file_changed_after_it_was_checked(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    clone = pushed_clone(repo, run, tmp_path)
    monkeypatch.chdir(clone)
    assert run("fetch").exit_code == 0
    corrupt = whole_tensor_file(clone, clone / "m.safetensors.mreg.toml")
    flip_a_byte(corrupt)

    result = run("checkout")

    assert_refused(result, corrupt.name, "do not match their recorded sha256", "mreg pull")
    assert not corrupt.exists()  # out of the cache: the next pull fetches it again
    assert not (clone / "m.safetensors").exists()
    assert not [p for p in clone.iterdir() if p.name.startswith(".m.safetensors.")]


def written_between_head_and_tail(source: Path, payload: bytes, out_path: Path) -> bytes:
    """What a file holds after ``head``, the tensor (from ``source``) and ``tail``."""
    tensor = TensorRecord("t", "uint8", (len(payload),), memoryview(payload), source)
    with open(out_path, "wb") as out:
        out.write(b"head")
        write_tensor(out, tensor)
        out.write(b"tail")
    return out_path.read_bytes()


def test_write_tensor_copies_from_its_source_file_between_buffered_writes(tmp_path):
    payload = os.urandom(3 << 20)
    source = tmp_path / "blob"
    source.write_bytes(payload)
    written = written_between_head_and_tail(source, payload, tmp_path / "out")
    assert written == b"head" + payload + b"tail"


def test_write_tensor_into_a_stream_without_a_file_writes_the_bytes(tmp_path):
    payload = b"\x01\x02\x03" * 1000
    source = tmp_path / "blob"
    source.write_bytes(payload)
    out = io.BytesIO()
    write_tensor(out, TensorRecord("t", "uint8", (len(payload),), memoryview(payload), source))
    assert out.getvalue() == payload


@pytest.mark.skipif(
    not Path("/dev/shm").is_dir(), reason="needs a second file system (/dev/shm) for the source"
)
def test_write_tensor_from_another_file_system_falls_back_to_writing_the_bytes(tmp_path):
    payload = os.urandom(1 << 20)
    with tempfile.NamedTemporaryFile(dir="/dev/shm") as handle:
        handle.write(payload)
        handle.flush()
        source = Path(handle.name)
        if source.stat().st_dev == tmp_path.stat().st_dev:
            pytest.skip("/dev/shm is on the same file system here")
        written = written_between_head_and_tail(source, payload, tmp_path / "out")
    assert written == b"head" + payload + b"tail"
