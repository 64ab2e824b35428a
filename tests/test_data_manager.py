"""One data manager for datasets and models (the seed pipeline's ``DataManager``): a dataset
version is registered, staged, searched, rolled back, removed and deprecated with the same GTO
tags and the same commands as a model's; ``mreg.DataManager`` covers both kinds in Python."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from helpers import assert_refused, commit_all, git, make_safetensors, make_table, snapshot

import mreg
from mreg.registry import DatasetEntry, ModelEntry, RegistryError


def rows_of(path: Path) -> list[int]:
    return pq.read_table(path).column("id").to_pylist()


def tags(root: Path) -> list[str]:
    return git(root, "tag", "--list").split()


@pytest.fixture
def train(repo: Path, run, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    """``train.parquet``: v1.0.0 of 100 rows, then 50 rows appended as v1.1.0, as typed."""
    commit_all(repo, "mreg init")
    table = make_table(repo / "train.parquet", rows=100)
    assert run("add", "train.parquet", "--meta", "owner=ml").exit_code == 0
    result = run("register", "train.parquet", "--name", "train", "--version", "1.0.0")
    assert result.exit_code == 0, result.stderr
    assert "registered train@v1.0.0 (100 rows" in result.stdout
    more = make_table(tmp_path / "more.parquet", rows=50, start=100)
    result = run("add", str(more), "--name", "train", "--mode", "append")
    assert result.exit_code == 0, result.stderr
    result = run("register", "train.parquet", "--name", "train", "--version", "1.1.0")
    assert result.exit_code == 0, result.stderr
    return table


def test_a_dataset_is_registered_staged_searched_rolled_back_and_pulled_by_a_clone(
    train: Path, repo: Path, remote_dir: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    assert {"train@v1.0.0", "train@v1.1.0"} <= set(tags(repo))
    assert "train" not in git(repo, "status", "--porcelain")  # register committed it
    commit_all(repo, "The remote")

    result = run("stage", "train", "1.1.0", "prod")
    assert result.exit_code == 0, result.stderr
    assert "tagged train#prod#1" in result.stdout
    result = run("search", "kind:dataset", "rows>120", "--json")
    assert result.exit_code == 0, result.stderr
    [found] = json.loads(result.stdout)
    assert (found["name"], found["version"], found["rows"]) == ("train", "v1.1.0", 150)
    assert found["stages"] == ["prod"] and found["columns"] == ["id", "label", "score"]

    # Roll back: the work tree gets v1.0.0's rows back, and that is committed as HEAD.
    result = run("checkout", "train@v1.0.0")
    assert result.exit_code == 0, result.stderr
    assert rows_of(train) == list(range(100))
    commit_all(repo, "Back to train v1.0.0")

    # A plain push uploads the staged version's data too (HEAD holds only v1.0.0's).
    result = run("push")
    assert result.exit_code == 0, result.stderr
    git(repo, "clone", "-q", str(repo), str(tmp_path / "clone"))
    clone = tmp_path / "clone"
    done = subprocess.run(["mreg", "pull"], cwd=clone, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert rows_of(clone / "train.parquet") == list(range(100))
    manager = mreg.DataManager(clone)
    assert manager.stages("train") == {"prod": "v1.1.0"}
    assert manager.open("train", "prod").to_table().column("id").to_pylist() == list(range(150))
    assert manager.rollback("train", "prod") == clone / "train.parquet"
    assert rows_of(clone / "train.parquet") == list(range(150))


def test_the_python_entry_point_registers_opens_rolls_back_and_deletes_a_dataset(
    repo: Path,
) -> None:
    commit_all(repo, "mreg init")
    manager = mreg.DataManager()
    (repo / "data").mkdir()
    table = make_table(repo / "data" / "eval.parquet", rows=16)
    first = manager.register("eval", table, tags=["tabular"], description="held out")
    assert isinstance(first, DatasetEntry)
    assert (first.tag, first.rows, first.tags) == ("eval@v0.1.0", 16, ("tabular",))
    assert first.meta["description"] == "held out"
    make_table(table, rows=32)  # a new version of the file, registered by name
    manager.register_dataset("eval", table, version="0.2.0")
    assert manager.versions("eval") == ["v0.1.0", "v0.2.0"]
    assert manager.open("eval", "v0.1.0").count_rows() == 16
    assert manager.open("eval").count_rows() == 32

    assert manager.rollback("eval", "v0.1.0") == table
    assert rows_of(table) == list(range(16))
    assert manager.info("eval", "v0.1.0").tag == "eval@v0.1.0"

    assert manager.delete("eval", "v0.2.0") == ["eval@v0.2.0!"]
    assert manager.versions("eval") == ["v0.1.0"]
    assert manager.deprecate("eval") == "eval@deprecated"
    assert [e.deprecated for e in manager.list_all("dataset")] == [True]


def test_search_finds_datasets_by_name_rows_columns_tags_and_metadata_beside_models(
    train: Path, repo: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    manager = mreg.DataManager()
    weights = make_safetensors(tmp_path / "w.safetensors")
    manager.register_model("clf", weights, "safetensors", performance_metrics={"accuracy": 0.9})
    manager.register("labels", make_table(repo / "labels.csv", rows=16), tags=["small", "cv"])
    manager.stage("train", "v1.0.0", "prod")

    def found(query: str, latest: bool = False) -> list[str]:
        return [f"{e.name}@{e.version}" for e in manager.search(query, latest=latest)]

    assert found("") == ["clf@v0.1.0", "labels@v0.1.0", "train@v1.0.0", "train@v1.1.0"]
    assert found("kind:model") == ["clf@v0.1.0"]
    assert found("kind:dataset", latest=True) == ["labels@v0.1.0", "train@v1.1.0"]
    assert found("kind:dataset rows>=100") == ["train@v1.0.0", "train@v1.1.0"]
    assert found("rows>100 rows<=150") == ["train@v1.1.0"]
    assert found("column:score format:parquet") == ["train@v1.0.0", "train@v1.1.0"]
    assert found("columns:nothing") == []
    assert found("tag:cv") == ["labels@v0.1.0"]
    assert found("owner:ml stage:prod") == ["train@v1.0.0"]
    assert found("tr* version>=v1.1.0") == ["train@v1.1.0"]
    assert found("accuracy>=0.5") == ["clf@v0.1.0"]
    assert [type(e) for e in manager.list_all()] == [ModelEntry, DatasetEntry, *[DatasetEntry] * 2]
    # The model registry itself still lists models only (the seed's ModelRegistry).
    assert [e.name for e in mreg.ModelRegistry().search("")] == ["clf"]

    result = run("search", "kind:dataset", "column:label")
    assert result.exit_code == 0, result.stderr
    assert "150 rows" in result.stdout and "labels" in result.stdout and "clf" not in result.stdout
    result = run("show", "train#prod")
    assert result.exit_code == 0, result.stderr
    assert "train (dataset)" in result.stdout and "100 rows" in result.stdout


def test_gto_reads_the_dataset_versions_and_stages_mreg_writes(
    train: Path, repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    gto_api = pytest.importorskip("gto.api")
    git(repo, "config", "user.name", "mreg tests")
    git(repo, "config", "user.email", "tests@mreg.invalid")
    assert run("stage", "train", "1.1.0", "prod").exit_code == 0
    assert run("stage", "train", "1.0.0", "prod").exit_code == 0  # a rollback of the stage
    assert run("stage", "train", "1.1.0", "dev").exit_code == 0
    assert run("deprecate", "train").exit_code == 0
    state = gto_api._get_state(str(repo))
    versions = state.find_artifact("train").get_versions(ascending=True)
    manager = mreg.DataManager()
    assert [v.version for v in versions] == manager.versions("train") == ["v1.0.0", "v1.1.0"]
    for stage in ("prod", "dev"):
        holders = gto_api.find_versions_in_stage(str(repo), "train", stage)
        assert [v.version for v in holders] == [manager.stages("train")[stage]]
    assert manager.stages("train") == {"dev": "v1.1.0", "prod": "v1.0.0"}
    assert manager.info("train").deprecated


def test_staging_a_dataset_version_that_does_not_exist_changes_nothing(
    train: Path, repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    before, tagged = snapshot(repo), tags(repo)
    result = run("stage", "train", "9.9.9", "prod")
    assert_refused(result, "train has no version v9.9.9", "v1.0.0, v1.1.0")
    result = run("stage", "nothing", "1.0.0", "prod")
    assert_refused(result, "no model named 'nothing' is registered")
    assert snapshot(repo) == before and tags(repo) == tagged


@pytest.mark.parametrize(
    ("query", "words"),
    [
        (["rows>"], ["malformed search term 'rows>'"]),
        (["kind:tabel"], ["malformed search term 'kind:tabel'", "no kind 'tabel'"]),
        (["kind:dataset", "=5"], ["malformed search term '=5'"]),
    ],
)
def test_a_malformed_query_is_one_line_naming_the_term(
    train: Path, repo: Path, run, query: list[str], words: list[str]
) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(repo)
    assert_refused(run("search", *query), *words)
    assert snapshot(repo) == before
    with pytest.raises(RegistryError, match=words[0].replace("'", ".")):
        mreg.DataManager().search(" ".join(query))


def test_exporting_a_dataset_is_refused_on_one_line(train: Path, repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(repo)
    result = run("export", "train@v1.0.0", "--format", "onnx", "-o", "train.onnx")
    assert_refused(result, "'train' is a dataset: only models are exported", "mreg checkout")
    assert snapshot(repo) == before


def test_a_models_name_is_not_registered_as_a_dataset_nor_the_reverse(
    train: Path, repo: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    weights = make_safetensors(tmp_path / "w.safetensors")
    assert run("register", str(weights), "--name", "clf").exit_code == 0
    before, tagged = snapshot(repo), tags(repo)
    table = make_table(tmp_path / "t.parquet", rows=16)
    result = run("register", str(table), "--name", "clf", "--kind", "dataset")
    assert_refused(result, "'clf' is a model, not a registered dataset")
    result = run("register", str(weights), "--name", "train", "--kind", "model")
    assert_refused(result, "'train' is a dataset, not a registered model")
    result = run("register", str(weights), "--name", "train")  # the name's kind: a dataset
    assert_refused(result, "'train' is a dataset, not a registered model")
    result = run("register", "train.parquet", "--name", "train", "--type", "vision")
    assert_refused(result, "'model_type' is for models; 'train' is registered as a dataset")
    assert snapshot(repo) == before and tags(repo) == tagged
    with pytest.raises(RegistryError, match="is a dataset, not a registered model"):
        mreg.DataManager().register_model("train", weights)


def test_unstage_remove_and_deprecate_commands_take_a_dataset(train: Path, repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    assert run("stage", "train", "1.0.0", "prod").exit_code == 0
    result = run("unstage", "train", "prod")
    assert result.exit_code == 0, result.stderr
    assert "train#prod!#2" in result.stdout
    result = run("remove", "train@1.0.0")
    assert result.exit_code == 0, result.stderr
    assert "train@v1.0.0!" in result.stdout
    assert run("deprecate", "train").exit_code == 0
    result = run("search", "kind:dataset", "--json")
    assert [(e["version"], e["deprecated"]) for e in json.loads(result.stdout)] == [
        ("v1.1.0", True)
    ]
    # A removed version is not staged again; its rows stay readable by tag (data until gc).
    assert_refused(run("stage", "train", "1.0.0", "prod"), "train v1.0.0 was removed")
    assert mreg.open("train", rev="train@v1.0.0").count_rows() == 100


def test_status_names_the_staged_dataset_version_the_remote_lacks_until_a_plain_push(
    train: Path, repo: Path, remote_dir: Path, run
) -> None:  # type: ignore[no-untyped-def]
    assert run("stage", "train", "1.1.0", "prod").exit_code == 0
    assert run("checkout", "train@v1.0.0").exit_code == 0
    commit_all(repo, "Back to train v1.0.0")
    result = run("status", "--remote", "origin")
    assert result.exit_code == 0, result.stderr
    assert "train@v1.1.0" in result.stdout and "not pushed" in result.stdout
    assert run("push").exit_code == 0
    result = run("status", "--remote", "origin")
    assert "not pushed" not in result.stdout, result.stdout
