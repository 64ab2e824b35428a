"""examples/ci/mreg-ci.sh, the shell the CI recipe runs, works against a local remote: it pulls,
gates on data missing from the remote, checks tagged models, and writes the markdown comment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers import added, commit_all, git, make_safetensors

from mreg.registry import ModelRegistry

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "ci" / "mreg-ci.sh"


def ci(root: Path, tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The script as CI runs it, with an ``mreg`` on PATH that is this checkout's."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    shim = bin_dir / "mreg"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m mreg "$@"\n')
    shim.chmod(0o755)
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    return subprocess.run(
        ["sh", str(SCRIPT)], cwd=root, capture_output=True, text=True,
        env={**os.environ, "PATH": path, **env},
    )  # fmt: skip


def test_the_ci_script_gates_on_unpushed_data_then_writes_the_review_comment(
    repo, run, remote_dir, tmp_path
):
    make_safetensors(repo / "net.safetensors", seed=0)
    added(run, repo / "net.safetensors")
    commit_all(repo, "v1")
    git(repo, "branch", "base")
    make_safetensors(repo / "net.safetensors", seed=1)
    added(run, repo / "net.safetensors")
    commit_all(repo, "v2")
    weights = make_safetensors(repo / "w.safetensors", seed=2)
    ModelRegistry(repo).register_model("clf", str(weights))  # tags clf@v0.1.0 on HEAD
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))

    remote_dir.mkdir()  # an empty remote: nobody ran `mreg push`
    gated = ci(clone, tmp_path, MREG_CI_BASE="origin/base")
    assert gated.returncode != 0
    assert "net" in gated.stderr and "error:" in gated.stderr, gated.stderr
    assert not (clone / "mreg-diff.md").exists()

    assert run("push").exit_code == 0
    done = ci(clone, tmp_path, MREG_CI_BASE="origin/base")
    assert done.returncode == 0, done.stderr
    assert "clf@v0.1.0: the code commit and every data version are available" in done.stdout
    comment = (clone / "mreg-diff.md").read_text()
    assert "#### ~ `net` (model, changed)" in comment
    assert "| tensors changed | | 6 of 6 | 100.0% of parameters |" in comment
    assert (clone / "net.safetensors").read_bytes() == (repo / "net.safetensors").read_bytes()
