"""A plain ``mreg push`` shares every registered and staged version, not only the work tree's:
what a colleague loads by version or stage after ``git clone`` + ``mreg pull`` is on the remote,
and ``mreg status --remote`` names each version (by its tag) whose data is not there yet."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import torch
from helpers import commit_all
from registry_models import predict, toy_data, train

from mreg import ModelRegistry

pytestmark = pytest.mark.usefixtures("trusted_test_models")

X, _ = toy_data(seed=1)
KWARGS = {"features": 4, "hidden": 8, "classes": 3}


def register_three(repo: Path) -> dict[str, torch.nn.Module]:
    """digits_clf v1.0.0, v1.1.0 and v1.2.0 (each trained a little longer), v1.1.0 in prod."""
    commit_all(repo, "mreg and its remote")
    registry = ModelRegistry()
    trained = {}
    for version, steps in (("v1.0.0", 5), ("v1.1.0", 20), ("v1.2.0", 60)):
        model, _ = train(steps)
        registry.register_model("digits_clf", model, "pytorch", version=version, init_kwargs=KWARGS)
        trained[version] = model
    registry.stage("digits_clf", "v1.1.0", "prod")
    return trained


def unpushed(run, remote: str) -> dict[str, list[str]]:
    """Label (the tag, for a version) -> states of every line ``status --remote`` gives."""
    result = run("status", "--remote", remote, "--json")
    assert result.exit_code == 0, result.stderr
    return {s.get("tag") or s["name"]: s["states"] for s in json.loads(result.stdout)}


def test_a_plain_push_shares_the_staged_version_so_a_clone_loads_prod(
    repo: Path, s3_remote: str, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    trained = register_three(repo)

    pushed = run("push")
    assert pushed.exit_code == 0, pushed.stderr
    assert unpushed(run, "s3") == {"digits_clf": ["in sync"]}

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    monkeypatch.chdir(clone)
    pulled = run("pull")
    assert pulled.exit_code == 0, pulled.stderr
    elsewhere = ModelRegistry()
    prod, _ = elsewhere.load_model("digits_clf", "prod")
    assert torch.equal(predict(prod, X), predict(trained["v1.1.0"], X))
    first, _ = elsewhere.load_model("digits_clf", "v1.0.0")
    assert torch.equal(predict(first, X), predict(trained["v1.0.0"], X))


def test_status_names_each_registered_version_the_remote_lacks_by_its_tag(
    repo: Path, remote_dir: Path, run
) -> None:  # type: ignore[no-untyped-def]
    register_three(repo)
    assert unpushed(run, "origin") == {
        "digits_clf": ["not pushed"],
        "digits_clf@v1.0.0": ["not pushed"],
        "digits_clf@v1.1.0": ["not pushed"],
        "digits_clf@v1.2.0": ["not pushed"],
    }
    text = run("status", "--remote", "origin").stdout
    assert "digits_clf@v1.1.0 (models/digits_clf/" in text

    # Pushing the work tree's artifact by name sends the newest version only.
    assert run("push", "digits_clf").exit_code == 0
    assert unpushed(run, "origin") == {
        "digits_clf": ["in sync"],
        "digits_clf@v1.0.0": ["not pushed"],
        "digits_clf@v1.1.0": ["not pushed"],
    }
    assert run("push").exit_code == 0
    assert unpushed(run, "origin") == {"digits_clf": ["in sync"]}
    again = run("push")
    assert again.exit_code == 0 and "pushed 0 file(s)" in again.stdout


def test_a_plain_push_leaves_a_deregistered_version_behind(
    repo: Path, remote_dir: Path, run
) -> None:  # type: ignore[no-untyped-def]
    register_three(repo)
    registry = ModelRegistry()
    registry.remove_model("digits_clf", "v1.0.0")

    assert run("push").exit_code == 0
    assert unpushed(run, "origin") == {"digits_clf": ["in sync"]}
    on_remote = {p.relative_to(remote_dir).as_posix() for p in remote_dir.rglob("*") if p.is_file()}
    for version, expected in (("v1.0.0", False), ("v1.1.0", True), ("v1.2.0", True)):
        found = registry.repo.lookup("digits_clf", f"digits_clf@{version}")
        assert found is not None
        assert ({f.path for f in found[1].files} <= on_remote) is expected, version
