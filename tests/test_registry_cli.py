"""The model registry through the CLI: register, models, stage, unstage, deprecate, remove, and
`mreg show NAME#STAGE`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import Marker, added, assert_refused, commit_all, git, make_table, snapshot
from registry_models import train

import mreg
from mreg.errors import RegistryError


def weights(path: Path, steps: int) -> Path:
    torch.save(train(steps)[0].state_dict(), path)
    return path


def test_register_stage_and_list_models_from_the_command_line(repo: Path, run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = weights(tmp_path / "w.pth", 3)
    result = run("register", path, "--name", "clf", "--type", "classification",
                 "--metric", "accuracy=0.91", "--meta", "author=ml team")  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert "registered clf@v0.1.0" in result.stdout
    assert run("register", weights(path, 6), "--name", "clf", "--version", "1.0.0").exit_code == 0
    assert run("stage", "clf", "v0.1.0", "prod").exit_code == 0
    assert run("stage", "clf", "1.0.0", "prod").exit_code == 0
    assert run("unstage", "clf", "prod").exit_code == 0
    assert json.loads(run("models", "--json").stdout)[0]["stages"] == {}
    assert run("stage", "clf", "v0.1.0", "prod").exit_code == 0

    listed = json.loads(run("models", "--json").stdout)
    assert listed == [
        {
            "name": "clf",
            "latest": "v1.0.0",
            "versions": ["v0.1.0", "v1.0.0"],
            "stages": {"prod": "v0.1.0"},
            "metrics": {},
            "model_format": "pytorch",
            "model_type": "custom",
            "deprecated": False,
        }
    ]
    table = run("models").stdout
    assert "clf" in table and "prod=v0.1.0" in table
    assert run("remove", "clf@v1.0.0").exit_code == 0
    assert run("deprecate", "clf").exit_code == 0
    assert "accuracy=0.91" in run("models").stdout  # v0.1.0 is the latest again
    assert "(deprecated)" in run("models").stdout
    moves = {"clf#prod#1", "clf#prod!#2", "clf#prod#3", "clf#prod!#4", "clf#prod#5"}
    assert moves | {"clf@v1.0.0!", "clf@deprecated"} <= set(git(repo, "tag", "--list").split())


def test_bad_registry_input_is_one_line_and_changes_nothing(repo: Path, run, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (repo / ".mreg" / "config.toml").write_text('[registry]\nstages = ["prod"]\n')
    path = weights(tmp_path / "w.pth", 3)
    assert run("register", path, "--name", "clf").exit_code == 0
    before = snapshot(repo), git(repo, "tag", "--list")
    assert_refused(
        run("register", path, "--name", "clf", "--version", "0.1.0"), "already registered"
    )
    assert_refused(
        run("register", path, "--name", "clf", "--version", "one"), "not a valid version"
    )
    assert_refused(run("register", path, "--name", "clf", "--metric", "acc=high"), "NAME=NUMBER")
    assert_refused(run("register", path, "--name", "clf", "--type", "toaster"), "unknown ModelType")
    assert_refused(run("register", tmp_path / "nope.pth", "--name", "x"), "no such file")
    assert_refused(run("stage", "clf", "0.1.0", "qa"), "stage 'qa' is not allowed", "prod")
    assert_refused(run("stage", "ghost", "0.1.0", "prod"), "no model named 'ghost'")
    assert_refused(run("unstage", "clf", "prod"), "no version of 'clf' is in stage 'prod'")
    assert_refused(run("remove", "clf@v9.0.0"), "clf has no version v9.0.0")
    marker = tmp_path / "pwned"
    torch.save({"payload": Marker(marker)}, tmp_path / "evil.pth")
    assert_refused(run("register", tmp_path / "evil.pth", "--name", "evil"), "refused")
    assert not marker.exists()
    assert (snapshot(repo), git(repo, "tag", "--list")) == before


def two_versions_first_in_prod(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """``clf`` v0.1.0 and v0.1.1 registered, v0.1.0 in stage prod."""
    path = weights(tmp_path / "w.pth", 3)
    assert run("register", path, "--name", "clf").exit_code == 0
    assert run("register", weights(path, 6), "--name", "clf").exit_code == 0
    assert run("stage", "clf", "v0.1.0", "prod").exit_code == 0


def test_show_name_hash_stage_describes_the_version_now_in_that_stage(
    repo: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    two_versions_first_in_prod(run, tmp_path)

    staged = run("show", "clf#prod")
    assert staged.exit_code == 0, staged.stderr
    assert "at clf@v0.1.0" in staged.stdout
    assert staged.stdout == run("show", "clf@v0.1.0").stdout
    assert json.loads(run("show", "clf#prod", "--json").stdout)["rev"] == "clf@v0.1.0"
    assert run("stage", "clf", "v0.1.1", "prod").exit_code == 0
    assert "at clf@v0.1.1" in run("show", "clf#prod").stdout

    before = snapshot(repo), git(repo, "tag", "--list")
    assert_refused(run("show", "clf#staging"), "no version of 'clf' is in stage 'staging'")
    assert_refused(run("show", "clf#"), "'clf#' names no stage")
    assert_refused(run("show", "ghost#prod"), "no model named 'ghost'")
    assert (snapshot(repo), git(repo, "tag", "--list")) == before


def test_python_users_look_up_name_hash_stage_as_the_cli_does(
    repo: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    two_versions_first_in_prod(run, tmp_path)

    manager = mreg.DataManager(repo)
    staged = manager.show("clf#prod")
    assert (staged.rev, staged.manifest.name) == ("clf@v0.1.0", "clf")
    assert staged == manager.show("clf@v0.1.0") == mreg.Repo(repo).show("clf@v0.1.0")
    assert manager.show("clf").rev is None  # no stage: the work tree's version, as Repo.show
    with pytest.raises(RegistryError, match="no version of 'clf' is in stage 'staging'"):
        manager.show("clf#staging")


def test_models_stats_and_validate_list_models_only_and_search_both_when_a_dataset_is_tagged(
    repo: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    added(run, make_table(repo / "t.csv", rows=5))
    commit_all(repo, "data")
    assert run("tag", "t", "v1.0.0").exit_code == 0
    assert run("register", weights(tmp_path / "w.pth", 3), "--name", "clf").exit_code == 0

    table = run("models")
    assert table.exit_code == 0, table.stderr
    assert [row.split()[0] for row in table.stdout.splitlines()[1:]] == ["clf"]
    listed = run("models", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert [m["name"] for m in json.loads(listed.stdout)] == ["clf"]
    searched = run("search", "--json")
    assert searched.exit_code == 0, searched.stderr
    assert [e["tag"] for e in json.loads(searched.stdout)] == ["clf@v0.1.0", "t@v1.0.0"]
    searched = run("search", "kind:model", "--json")
    assert [e["tag"] for e in json.loads(searched.stdout)] == ["clf@v0.1.0"]
    counted = run("stats", "--json")
    assert counted.exit_code == 0, counted.stderr
    assert json.loads(counted.stdout)["models"] == 1
    checked = run("validate", "--json")
    assert checked.exit_code == 0, checked.stdout
    assert json.loads(checked.stdout)["versions"] == 1

    # Stage verbs take the dataset as a dataset (tests/test_data_manager.py); registering a
    # model under its name is refused.
    shown = run("show", "t@v1.0.0")
    assert shown.exit_code == 0, shown.stderr
    assert "t (dataset) t.csv at t@v1.0.0" in shown.stdout
    before = snapshot(repo), git(repo, "tag", "--list")
    refused = "'t' is a dataset, not a registered model"
    assert_refused(run("show", "t#prod"), "no version of 't' is in stage 'prod'")
    assert_refused(run("register", tmp_path / "w.pth", "--name", "t"), refused, "mreg show t")
    assert (snapshot(repo), git(repo, "tag", "--list")) == before
