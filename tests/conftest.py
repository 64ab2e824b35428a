"""Fixtures that build the world: an isolated home, git work trees with mreg, remotes (a local
directory and a real SeaweedFS S3 server). The helpers tests share are in helpers.py."""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import Result, add_s3_remote, init_work_tree
from seaweed import Seaweed, seaweed_server

from mreg.cli import main


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test reads or writes the real user's git, AWS or mreg settings."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(home / ".gitconfig"))
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.setenv(f"GIT_{role}_NAME", "mreg tests")
        monkeypatch.setenv(f"GIT_{role}_EMAIL", "tests@mreg.invalid")
    monkeypatch.setenv("MREG_NO_PROGRESS", "1")
    for name in list(os.environ):
        if name.startswith(("AWS_", "MREG_REMOTE")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(home / "aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(home / "aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def trusted_test_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading builds classes of trusted modules only: registry tests trust their own models
    (``tests/registry_models.py``) with ``pytestmark = pytest.mark.usefixtures(...)``."""
    monkeypatch.setenv("MREG_TRUSTED_MODULES", "registry_models")


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """Run the ``mreg`` CLI in-process, as a user would type it; returns exit code and output."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as exit_:
            code = int(exit_.code or 0) if not isinstance(exit_.code, str) else 1
        out, err = capsys.readouterr()
        return Result(code, out, err)

    return invoke


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run) -> Path:  # type: ignore[no-untyped-def]
    """A git work tree with ``mreg init`` done, as the current directory."""
    root = init_work_tree(tmp_path / "work")
    monkeypatch.chdir(root)
    assert run("init").exit_code == 0
    return root


@pytest.fixture
def remote_dir(tmp_path: Path, repo: Path, run) -> Path:  # type: ignore[no-untyped-def]
    """A local-directory remote, set as the repo's default."""
    path = tmp_path / "remote"
    assert run("remote", "add", "origin", str(path), "--default").exit_code == 0
    return path


@pytest.fixture(scope="session")
def seaweed() -> Iterator[Seaweed]:
    """One real SeaweedFS S3 server for the whole session; its data goes with it."""
    with seaweed_server() as server:
        yield server


_buckets = itertools.count()


@pytest.fixture
def s3_bucket(seaweed: Seaweed) -> str:
    """A fresh, empty bucket per test."""
    name = f"test-{os.getpid()}-{next(_buckets)}"
    seaweed.create_bucket(name)
    return name


@pytest.fixture
def s3_remote(
    repo: Path, seaweed: Seaweed, s3_bucket: str, run, monkeypatch: pytest.MonkeyPatch
) -> str:  # type: ignore[no-untyped-def]
    """The repo's default remote in a fresh SeaweedFS bucket; credentials from AWS variables."""
    return add_s3_remote(run, monkeypatch, f"s3://{s3_bucket}/team/models", seaweed.endpoint)
