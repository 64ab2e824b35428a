"""Helpers the tests share, imported as ``from helpers import ...`` (pytest puts ``tests/`` on
``sys.path``: ``pythonpath`` in pyproject.toml): git in a work tree, the checks on what mreg did
(and did not) change, and small models and tables made on the spot. Fixtures are in conftest.py.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from seaweed import ACCESS_KEY, SECRET_KEY


@dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def init_work_tree(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    return path


def commit_all(root: Path, message: str) -> str:
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", message)
    return git(root, "rev-parse", "HEAD").strip()


# -- checks on what mreg did (and did not) change ------------------------------------------

# Not content: the empty lock file mreg holds while it works, and its memo of file hashes.
UNTRACKED = {".mreg/lock", ".mreg/state.json"}


def snapshot(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (.git/ and UNTRACKED left out)."""
    if not root.exists():
        return {}
    found = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if rel.parts[0] == ".git" or rel.as_posix() in UNTRACKED or not path.is_file():
            continue
        found[rel.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def assert_one_line_error(stderr: str, *words: str) -> str:
    """``stderr`` is one ``error:`` line, with no traceback, that contains every word."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    line = lines[0]
    assert line.startswith("error:"), line
    for word in words:
        assert word.lower() in line.lower(), f"{word!r} not in {line!r}"
    assert "Traceback" not in stderr
    return line


def assert_refused(result: Result, *words: str) -> str:
    """A non-zero exit with one ``error:`` line on stderr that contains every word."""
    assert result.exit_code != 0, result
    assert "Traceback" not in result.stdout
    return assert_one_line_error(result.stderr, *words)


def manifest_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".mreg.toml")


def added(run, path: Path, *args: str) -> Path:  # type: ignore[no-untyped-def]
    """``mreg add`` of ``path`` by its name (the work tree is the current directory); returns
    the manifest it wrote."""
    result = run("add", path.name, *args)
    assert result.exit_code == 0, result.stderr
    return manifest_path(path)


def refused_without_trace(repo: Path, run, path: Path, *words: str) -> str:  # type: ignore[no-untyped-def]
    """``mreg add path`` fails with one line holding ``words`` and changes nothing."""
    before = snapshot(repo)
    line = assert_refused(run("add", path.name), path.name, *words)
    assert snapshot(repo) == before
    assert not manifest_path(path).exists()
    return line


def restore_from_cache(repo: Path, run, artifact: str) -> None:  # type: ignore[no-untyped-def]
    """Delete the artifact from the work tree and check it out again."""
    path = repo / artifact
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()
    result = run("checkout")
    assert result.exit_code == 0, result.stderr


class Marker:
    """Unpickling this creates ``marker``: the code a hostile checkpoint would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.marker),))


def add_s3_remote(run, monkeypatch: pytest.MonkeyPatch, url: str, endpoint: str) -> str:  # type: ignore[no-untyped-def]
    """``mreg remote add s3 URL --default`` at ``endpoint``, the test server's keys in the
    AWS variables; returns ``url``."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    result = run(
        "remote", "add", "s3", url, "--default", "--endpoint-url", endpoint,
        "--region", "us-east-1",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    return url


def make_tensors(seed: int = 0, layers: int = 3, width: int = 16) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    tensors = {}
    for i in range(layers):
        tensors[f"layers.{i}.weight"] = rng.standard_normal((width, width), dtype=np.float32)
        tensors[f"layers.{i}.bias"] = rng.standard_normal(width, dtype=np.float32)
    return tensors


def make_safetensors(
    path: Path, seed: int = 0, metadata: dict[str, str] | None = None, **kw: int
) -> Path:
    from safetensors.numpy import save_file

    save_file(make_tensors(seed, **kw), str(path), metadata=metadata)
    return path


def make_pth(path: Path, seed: int = 0, checkpoint: bool = False) -> Path:
    import torch

    state = {k: torch.from_numpy(v) for k, v in make_tensors(seed).items()}
    obj: object = state
    if checkpoint:
        obj = {"model": state, "epoch": 3, "lr": 0.01, "name": "run-1", "betas": (0.9, 0.999)}
    torch.save(obj, path)
    return path


def make_table(path: Path, rows: int = 100, start: int = 0) -> Path:
    table = pa.table(
        {
            "id": pa.array(range(start, start + rows), pa.int64()),
            "label": [f"item-{i}" for i in range(start, start + rows)],
            "score": [i / 10 for i in range(start, start + rows)],
        }
    )
    if path.suffix == ".csv":
        pacsv.write_csv(table, path)
    else:
        pq.write_table(table, path)
    return path
