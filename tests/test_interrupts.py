"""Interrupted or concurrent commands leave the repository and cache consistent."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save_file

from mreg.errors import MregError
from mreg.repo import Repo


def big_model(path: Path, tensors: int = 24, mib_each: int = 8) -> Path:
    rng = np.random.default_rng(1)
    floats = mib_each * (1 << 20) // 4
    save_file(
        {f"t{i}": rng.standard_normal(floats, dtype=np.float32) for i in range(tensors)}, str(path)
    )
    return path


def cached_files_match_some_hash(repo: Path, manifest: Path) -> None:
    recorded = {
        f["path"]: f["sha256"] for f in tomllib.loads(manifest.read_text())["lance"]["files"]
    }
    for path, sha in recorded.items():
        data = (repo / ".mreg" / "cache" / path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == sha


@pytest.mark.slow
def test_add_interrupted_by_ctrl_c_writes_no_manifest_and_a_rerun_converges(repo, run):
    big_model(repo / "m.safetensors")
    process = subprocess.Popen(
        [shutil.which("mreg") or "mreg", "add", "m.safetensors"],
        cwd=repo,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Wait until the conversion has started writing, then interrupt it like Ctrl-C.
    deadline = time.monotonic() + 60
    tmp = repo / ".mreg" / "tmp"
    while time.monotonic() < deadline and process.poll() is None:
        if tmp.exists() and any(tmp.rglob("*.lance")):
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)

    if process.returncode == 0:
        pytest.skip("the add finished before the interrupt arrived")
    assert process.returncode == 130
    assert "interrupted" in stderr
    assert not (repo / "m.safetensors.mreg.toml").exists()
    assert not any(p.is_file() for p in tmp.rglob("*")) if tmp.exists() else True

    result = run("add", "m.safetensors")
    assert result.exit_code == 0, result.stderr
    cached_files_match_some_hash(repo, repo / "m.safetensors.mreg.toml")


def test_a_second_command_waits_for_the_lock_and_then_says_so(repo, monkeypatch):
    from mreg.repo import lock

    monkeypatch.setattr(lock, "WAIT_SECONDS", 0.3)
    holder = Repo(repo)
    other = Repo(repo)
    with holder.lock.held(), pytest.raises(MregError, match="another mreg command"):
        other.gc(force=True)
    # Released: the same call now goes through.
    assert other.gc(force=True).deleted


def test_the_lock_is_reentrant_within_one_command(repo):
    r = Repo(repo)
    with r.lock.held(), r.lock.held():
        assert r.gc(force=False).unused == ()
    assert os.path.exists(repo / ".mreg" / "lock")
