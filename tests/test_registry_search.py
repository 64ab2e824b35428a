"""Registry search: the query language, stages, metrics, the CLI, and the index cache."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import assert_refused, commit_all, make_safetensors, make_table, snapshot

from mreg import ModelRegistry
from mreg.registry import RegistryError
from mreg.repo import index as search_index
from mreg.repo.git import GitRepo

INDEX = Path(".mreg/cache/registry-index.json")


def parsed_manifests(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The origins of the manifests parsed from now on, in order, as they are parsed."""
    parsed: list[str] = []
    real_loads = search_index.manifests.loads

    def counting(text: str, origin: str):  # type: ignore[no-untyped-def]
        parsed.append(origin)
        return real_loads(text, origin)

    monkeypatch.setattr(search_index.manifests, "loads", counting)
    return parsed


def blobs(parsed: list[str]) -> set[str]:
    """The manifests among ``parsed`` that were read from git by blob id (the index's reads),
    not from the work tree by path."""
    return {origin for origin in parsed if re.fullmatch("[0-9a-f]{40}", origin)}


def register(
    registry: ModelRegistry,
    name: str,
    accuracy: float,
    model_type: str = "classification",
    seed: int = 0,
    **metadata: object,
) -> str:
    weights = make_safetensors(Path(f"../{name}-{seed}.safetensors"), seed=seed, layers=1, width=4)
    entry = registry.register_model(
        name,
        weights,
        "safetensors",
        model_type,
        performance_metrics={"accuracy": accuracy, "loss": round(1 - accuracy, 3)},
        **metadata,  # type: ignore[arg-type]
    )
    return entry.version


@pytest.fixture
def registry(repo: Path) -> ModelRegistry:
    """resnet-a (2 versions, cv), resnet-b (1, cv), bert (2, nlp), embedder (1, regression)."""
    registry = ModelRegistry()
    register(registry, "resnet-a", 0.80, tags=["cv"], author="ana", license="MIT")
    register(registry, "resnet-a", 0.93, seed=1, tags=["cv", "best"], author="ana", license="MIT")
    register(registry, "resnet-b", 0.70, seed=2, tags=["cv"], author="bo", license="Apache-2.0")
    register(registry, "bert", 0.60, "embedding", seed=3, tags=["nlp"], author="cy")
    register(registry, "bert", 0.95, "embedding", seed=4, tags=["nlp"], author="cy")
    register(registry, "embedder", 0.5, "regression", seed=5, training_epochs=12)
    return registry


def found(registry: ModelRegistry, query: str, latest: bool = False) -> list[str]:
    return [f"{e.name}@{e.version}" for e in registry.search(query, latest=latest)]


def test_an_empty_query_finds_every_active_version_by_name_then_version(
    registry: ModelRegistry,
) -> None:
    assert found(registry, "") == [
        "bert@v0.1.0", "bert@v0.1.1", "embedder@v0.1.0",
        "resnet-a@v0.1.0", "resnet-a@v0.1.1", "resnet-b@v0.1.0",
    ]  # fmt: skip


def test_a_bare_glob_and_name_terms_match_model_names(registry: ModelRegistry) -> None:
    assert found(registry, "resnet*") == ["resnet-a@v0.1.0", "resnet-a@v0.1.1", "resnet-b@v0.1.0"]
    assert found(registry, "name:bert") == ["bert@v0.1.0", "bert@v0.1.1"]
    assert found(registry, "name!=resnet*") == [
        "bert@v0.1.0", "bert@v0.1.1", "embedder@v0.1.0",
    ]  # fmt: skip
    assert found(registry, "nothing*") == []


def test_type_format_kind_and_tag_terms_filter_versions(registry: ModelRegistry) -> None:
    assert found(registry, "type:regression") == ["embedder@v0.1.0"]
    assert len(found(registry, "format:safetensors kind:model")) == 6
    assert found(registry, "format:onnx") == []
    assert found(registry, "kind:dataset") == []
    assert found(registry, "tag:best") == ["resnet-a@v0.1.1"]
    assert found(registry, "tags:nlp") == ["bert@v0.1.0", "bert@v0.1.1"]
    assert found(registry, "tag:cv type:embedding") == []


def test_metrics_compare_as_numbers_under_their_own_names(registry: ModelRegistry) -> None:
    assert found(registry, "accuracy>=0.93") == ["bert@v0.1.1", "resnet-a@v0.1.1"]
    assert found(registry, "accuracy>0.93") == ["bert@v0.1.1"]
    assert found(registry, "accuracy<0.6") == ["embedder@v0.1.0"]
    assert found(registry, "accuracy<=0.6 tag:nlp") == ["bert@v0.1.0"]
    assert found(registry, "accuracy=0.7") == ["resnet-b@v0.1.0"]
    assert found(registry, "metric.loss<0.1") == ["bert@v0.1.1", "resnet-a@v0.1.1"]
    assert found(registry, "f1>0") == []


def test_metadata_fields_match_globs_comparisons_and_inequality(registry: ModelRegistry) -> None:
    assert found(registry, "author:an*") == ["resnet-a@v0.1.0", "resnet-a@v0.1.1"]
    assert found(registry, "license!=MIT") == ["resnet-b@v0.1.0"]
    assert found(registry, "training_epochs>=10") == ["embedder@v0.1.0"]
    assert found(registry, "version>=v0.1.1 resnet*") == ["resnet-a@v0.1.1"]


def test_stage_terms_find_only_the_version_now_in_the_stage(registry: ModelRegistry) -> None:
    registry.stage("resnet-a", "v0.1.0", "prod")
    registry.stage("bert", "v0.1.1", "prod")
    assert found(registry, "stage:prod") == ["bert@v0.1.1", "resnet-a@v0.1.0"]
    registry.stage("resnet-a", "v0.1.1", "prod")
    assert found(registry, "stage:prod tag:cv") == ["resnet-a@v0.1.1"]
    registry.unstage("bert", "prod")
    assert found(registry, "stage:prod") == ["resnet-a@v0.1.1"]
    assert found(registry, "stage:staging") == []


def test_latest_keeps_each_models_newest_matching_version(registry: ModelRegistry) -> None:
    assert found(registry, "tag:cv", latest=True) == ["resnet-a@v0.1.1", "resnet-b@v0.1.0"]
    assert found(registry, "accuracy<0.9", latest=True) == [
        "bert@v0.1.0", "embedder@v0.1.0", "resnet-a@v0.1.0", "resnet-b@v0.1.0",
    ]  # fmt: skip


def test_removed_versions_are_not_found(registry: ModelRegistry) -> None:
    registry.remove_model("bert", "v0.1.1")
    assert found(registry, "bert") == ["bert@v0.1.0"]
    assert found(registry, "bert", latest=True) == ["bert@v0.1.0"]


def test_search_entries_carry_the_manifest_metadata(registry: ModelRegistry) -> None:
    (entry,) = registry.search("resnet-a accuracy>0.9")
    assert entry == registry.get_model_info("resnet-a", "v0.1.1")
    assert entry.metadata.tags == ("cv", "best")
    assert entry.metadata.parameters_count == 4 * 4 + 4


@pytest.mark.parametrize("term", ["accuracy>=", ">=0.9", "name:", "acc>>0.9", "=x", "x:=1"])
def test_a_malformed_term_is_a_registry_error_naming_the_term(
    registry: ModelRegistry, term: str
) -> None:
    with pytest.raises(RegistryError, match=re.escape(f"malformed search term '{term}'")):
        registry.search(f"resnet* {term}")
    with pytest.raises(ValueError, match="malformed search term"):
        registry.search(term)


def test_the_search_command_refuses_a_malformed_term_on_one_line(
    registry: ModelRegistry, repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    before = snapshot(repo)
    result = run("search", "tag:cv", "accuracy>=")
    assert_refused(result, "malformed search term 'accuracy>='")
    assert result.stdout == ""
    assert snapshot(repo) == before


def test_the_search_command_prints_json_entries(registry: ModelRegistry, run) -> None:  # type: ignore[no-untyped-def]
    result = run("search", "tag:cv accuracy>=0.75", "--json")
    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [(e["name"], e["version"]) for e in entries] == [
        ("resnet-a", "v0.1.0"), ("resnet-a", "v0.1.1"),
    ]  # fmt: skip
    assert entries[1]["metadata"]["performance_metrics"] == {"accuracy": 0.93, "loss": 0.07}
    assert entries[1]["tag"] == "resnet-a@v0.1.1"


def test_the_search_command_prints_a_table_and_honours_latest(registry: ModelRegistry, run) -> None:  # type: ignore[no-untyped-def]
    result = run("search", "resnet*", "--latest")
    assert result.exit_code == 0, result.stderr
    assert "resnet-a" in result.stdout and "v0.1.1" in result.stdout
    assert "v0.1.0" in result.stdout  # resnet-b's only version
    assert "accuracy=0.93" in result.stdout
    assert "bert" not in result.stdout


def test_a_repeated_search_reads_manifests_from_the_index_not_git(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    INDEX.unlink(missing_ok=True)
    first = found(registry, "tag:cv")
    assert INDEX.exists()

    def no_parsing(text: str, origin: str) -> None:
        raise AssertionError(f"manifest {origin} parsed again")

    monkeypatch.setattr(search_index.manifests, "loads", no_parsing)
    assert found(ModelRegistry(), "tag:cv") == first


def test_a_new_version_is_added_to_the_index_and_found(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert found(registry, "resnet-b") == ["resnet-b@v0.1.0"]
    parsed = parsed_manifests(monkeypatch)
    register(registry, "resnet-b", 0.99, seed=9, tags=["cv"])
    assert found(registry, "resnet-b accuracy>0.9") == ["resnet-b@v0.1.1"]
    assert len(blobs(parsed)) == 1  # only the new version's manifest blob
    index = json.loads(INDEX.read_text())
    assert sum(key.endswith(":resnet-b") for key in index["located"]) == 2


def test_registering_a_version_reads_the_earlier_versions_manifests_from_the_index(
    registry: ModelRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    for seed in range(10, 13):
        register(registry, "resnet-a", 0.5, seed=seed)
    parsed = parsed_manifests(monkeypatch)
    entry = register(registry, "resnet-a", 0.99, seed=20)
    assert entry == "v0.1.5"
    # Before, each registration parsed every earlier version's manifest blob from git, three
    # times: the 1,000th version of a model took 5 s. Now the index holds them. (Manifests in
    # the work tree, one per artifact, are read by path.)
    assert len(blobs(parsed)) <= 1, blobs(parsed)


def test_a_damaged_index_is_rebuilt_from_git(registry: ModelRegistry) -> None:
    expected = found(registry, "accuracy>=0.9")
    INDEX.write_text("{not json")
    assert found(ModelRegistry(), "accuracy>=0.9") == expected
    assert json.loads(INDEX.read_text())["version"] == search_index.INDEX_VERSION


def test_a_model_registered_outside_the_registry_folder_is_still_found(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry()
    register(registry, "clf", 0.9)
    elsewhere = ModelRegistry(repo / "other")
    register(elsewhere, "side", 0.8, seed=1)
    assert found(ModelRegistry(), "accuracy>=0.8") == ["clf@v0.1.0", "side@v0.1.0"]
    assert found(ModelRegistry(), "side") == ["side@v0.1.0"]


def tag_dataset(root: Path, run, path: Path, version: str, rows: int) -> None:  # type: ignore[no-untyped-def]
    """Write ``rows`` rows to ``path``, ``mreg add`` it, commit, ``mreg tag NAME VERSION``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    result = run("add", make_table(path, rows=rows).relative_to(root))
    assert result.exit_code == 0, result.stderr
    commit_all(root, f"{path.stem} {version}")
    result = run("tag", path.stem, version)
    assert result.exit_code == 0, result.stderr


def test_datasets_tagged_in_and_outside_the_registry_folder_are_never_found(
    registry: ModelRegistry, repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    expected = found(registry, "")
    for i, version in enumerate(("v1.0.0", "v1.1.0", "v1.2.0")):
        tag_dataset(repo, run, repo / "data" / "train.csv", version, rows=10 + i)
    tag_dataset(repo, run, repo / "models" / "feats" / "feats.parquet", "v0.1.0", rows=4)
    assert found(registry, "") == expected
    assert found(ModelRegistry(), "") == expected  # from the index this time
    assert found(registry, "train") == found(registry, "feats") == []
    assert found(registry, "kind:dataset") == []
    assert [e.tag for e in registry.list_models(name="bert")] == ["bert@v0.1.0", "bert@v0.1.1"]
    assert [s.name for s in registry.models()] == ["bert", "embedder", "resnet-a", "resnet-b"]
    assert registry.stats().versions == len(expected)
    report = registry.validate_registry(load=False)
    assert report.ok and report.versions == len(expected)


def test_a_tagged_dataset_costs_one_tree_listing_cold_and_none_warm(
    registry: ModelRegistry, repo: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    for i in range(4):
        tag_dataset(repo, run, repo / "train.csv", f"v1.{i}.0", rows=10 + i)
    listed: list[str] = []
    real_blobs_at = GitRepo.blobs_at

    def counting(self: GitRepo, rev: str, suffix: str) -> list[tuple[str, str]]:
        listed.append(rev)
        return real_blobs_at(self, rev, suffix)

    monkeypatch.setattr(GitRepo, "blobs_at", counting)
    INDEX.unlink(missing_ok=True)
    assert len(found(ModelRegistry(), "")) == 6
    assert len(listed) == 1  # one commit's tree; the other versions are found beside it
    index = json.loads(INDEX.read_text())
    datasets = [k for k in index["located"] if k.endswith(":train")]
    assert len(datasets) == 4
    assert {index["facts"][index["located"][k][1]]["kind"] for k in datasets} == {"dataset"}

    def no_parsing(text: str, origin: str) -> None:
        raise AssertionError(f"manifest {origin} parsed again")

    monkeypatch.setattr(search_index.manifests, "loads", no_parsing)
    assert len(found(ModelRegistry(), "")) == 6
    assert len(listed) == 1
