"""GTO sees what mreg sees, and the reverse: mreg follows GTO's grammar for names, versions
(semantic versions with pre-release and build) and every tag form GTO writes, checked against
the ``gto`` package itself; names GTO cannot read are refused when registering or staging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import (
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    make_tensors,
    snapshot,
)

from mreg import ModelRegistry

gto_api = pytest.importorskip("gto.api")


def gto_versions(repo: Path, name: str) -> list[str]:
    """The versions GTO lists as registered and active, oldest first."""
    state = gto_api._get_state(str(repo))
    return [v.version for v in state.find_artifact(name).get_versions(ascending=True)]


def gto_stages(repo: Path, name: str, stages: tuple[str, ...]) -> dict[str, str]:
    found = {}
    for stage in stages:
        holders = gto_api.find_versions_in_stage(str(repo), name, stage)
        if holders:
            found[stage] = holders[0].version
    return found


@pytest.fixture
def identity(repo: Path) -> Path:
    """GTO's git library reads the committer from the repository's config."""
    git(repo, "config", "user.name", "mreg tests")
    git(repo, "config", "user.email", "tests@mreg.invalid")
    return repo


def test_gto_reads_the_versions_and_stages_mreg_writes(identity: Path, tmp_path: Path) -> None:
    repo = identity
    commit_all(repo, "mreg")
    registry = ModelRegistry()
    for seed, version in enumerate(("v1.0.0", "v1.1.0-rc.1", "v1.1.0", "v1.2.0+build.7")):
        weights = make_safetensors(tmp_path / f"w{seed}.safetensors", seed=seed)
        registry.register_model("net", weights, "safetensors", version=version)
    registry.remove_model("net", "v1.2.0+build.7")
    registry.stage("net", "v1.1.0", "prod")
    registry.stage("net", "v1.1.0-rc.1", "staging")
    registry.stage("net", "v1.0.0", "prod")  # a rollback: v1.1.0 leaves prod
    registry.unstage("net", "staging")
    registry.stage("net", "v1.1.0", "dev")

    assert registry.versions("net") == ["v1.0.0", "v1.1.0-rc.1", "v1.1.0"]
    assert gto_versions(repo, "net") == registry.versions("net")
    assert registry.stages("net") == {"dev": "v1.1.0", "prod": "v1.0.0"}
    assert gto_stages(repo, "net", ("dev", "prod", "staging")) == registry.stages("net")


def test_mreg_reads_the_versions_and_stages_gto_writes_in_every_tag_form(
    identity: Path, run
) -> None:  # type: ignore[no-untyped-def]
    repo = identity
    make_safetensors(repo / "net.safetensors", seed=1)
    assert run("add", "net.safetensors", "--name", "net").exit_code == 0
    first = commit_all(repo, "net, first weights")
    make_safetensors(repo / "net.safetensors", seed=2)
    assert run("add", "net.safetensors", "--name", "net").exit_code == 0
    second = commit_all(repo, "net, second weights")

    where = str(repo)
    gto_api.register(where, "net", first, version="v1.0.0")
    gto_api.register(where, "net", second, version="v1.1.0-rc.1")
    gto_api.assign(where, "net", "prod", version="v1.0.0", simple=True)  # net#prod
    gto_api.assign(where, "net", "staging", version="v1.1.0-rc.1")  # net#staging#N
    gto_api.assign(where, "net", "qa", version="v1.0.0", simple=True)
    gto_api.unassign(where, "net", stage="qa", version="v1.0.0", simple=True)  # net#qa!
    tags = git(repo, "tag").split()
    assert {"net#prod", "net#qa", "net#qa!", "net@v1.1.0-rc.1"} <= set(tags)

    registry = ModelRegistry()
    assert registry.versions("net") == gto_versions(repo, "net") == ["v1.0.0", "v1.1.0-rc.1"]
    assert registry.stages("net") == {"prod": "v1.0.0", "staging": "v1.1.0-rc.1"}
    assert gto_stages(repo, "net", ("prod", "qa", "staging")) == registry.stages("net")
    assert registry.get_model_info("net", "latest").version == "v1.1.0-rc.1"
    weights, _ = registry.load_model("net", "prod")
    for key, expected in make_tensors(seed=1).items():
        np.testing.assert_array_equal(weights[key].numpy(), expected)
    shown = run("show", "net#prod")
    assert shown.exit_code == 0 and "net@v1.0.0" in shown.stdout

    # GTO's deregistration and deprecation forms.
    gto_api.deregister(where, "net", version="v1.1.0-rc.1")
    gto_api.deprecate(where, "net")
    assert ModelRegistry().versions("net") == ["v1.0.0"]
    (summary,) = ModelRegistry().models()
    assert summary.deprecated


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["register", "w.safetensors", "--name", "net_"], ["'net_'", "GTO"]),
        (["register", "w.safetensors", "--name", "bert.tiny"], ["'bert.tiny'", "GTO"]),
        (["stage", "net", "v0.1.0", "prod_"], ["'prod_'", "GTO"]),
        (["stage", "net", "v0.1.0", "prod.eu"], ["'prod.eu'", "GTO"]),
        (["tag", "bert.tiny", "v1.0.0"], ["'bert.tiny'", "GTO"]),
        (["register", "w.safetensors", "--name", "net", "--version", "1.0"], ["version"]),
    ],
)
def test_a_name_or_version_gto_cannot_read_is_refused_in_one_line_and_changes_nothing(
    repo: Path, run, args: list[str], words: list[str]
) -> None:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "w.safetensors")
    assert run("register", "w.safetensors", "--name", "net").exit_code == 0
    make_safetensors(repo / "tiny.safetensors")
    assert run("add", "tiny.safetensors", "--name", "bert.tiny").exit_code == 0
    commit_all(repo, "bert.tiny, a plain artifact: any mreg name will do")
    tags, before = git(repo, "tag"), snapshot(repo)

    assert_refused(run(*args), *words)
    assert git(repo, "tag") == tags
    assert snapshot(repo) == before


def test_versions_order_by_semantic_version_precedence(repo: Path, tmp_path: Path) -> None:
    registry = ModelRegistry()
    for seed, version in enumerate(("1.0.0-rc.2", "1.0.0-rc.10", "1.0.0-alpha", "1.0.0")):
        weights = make_safetensors(tmp_path / f"w{seed}.safetensors", seed=seed)
        registry.register_model("net", weights, "safetensors", version=version)
    assert registry.versions("net") == ["v1.0.0-alpha", "v1.0.0-rc.2", "v1.0.0-rc.10", "v1.0.0"]
    weights = make_safetensors(tmp_path / "next.safetensors", seed=9)
    assert registry.register_model("net", weights, "safetensors").version == "v1.0.1"
