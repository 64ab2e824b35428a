"""A server answers registry reads from memory, and never with an answer the refs have moved
past: what the CLI changes beside a running ``mreg serve`` is in the next answer."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers import git, make_safetensors
from serve_helpers import WRITER, mreg_serve

import mreg
from mreg.server.read_cache import ReadCache

API = "/api/v1"


def info(server, name: str, version: str = "latest") -> dict:  # type: ignore[no-untyped-def]
    answer = httpx.get(
        f"{server.url}{API}/models/{name}",
        params={"version": version},
        headers=server.headers(WRITER),
        timeout=30,
    )
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_what_the_cli_registers_beside_the_server_is_in_its_next_answer(
    repo: Path, run, tmp_path: Path, transport: str
):  # type: ignore[no-untyped-def]
    for seed in (1, 2):
        model = make_safetensors(tmp_path / f"m{seed}.safetensors", seed)
        assert run("register", model, "--name", "net").exit_code == 0
    with mreg_serve(repo, grpc=True) as server:
        client = mreg.Client(server.url if transport == "http" else server.grpc_url, WRITER)
        assert client.entry("net").version == "v0.1.1"
        assert client.entry("net").version == "v0.1.1"  # answered again, from memory
        assert [m.latest for m in client.models()] == ["v0.1.1"]
        model = make_safetensors(tmp_path / "m3.safetensors", 3)
        assert run("register", model, "--name", "net").exit_code == 0
        assert run("stage", "net", "v0.1.0", "prod").exit_code == 0
        assert client.entry("net").version == "v0.1.2"
        assert client.entry("net", "#prod").version == "v0.1.0"
        assert [m.latest for m in client.models()] == ["v0.1.2"]
        git(repo, "pack-refs", "--all")  # the tags move into packed-refs: same answers
        assert client.entry("net", "#prod").version == "v0.1.0"
        assert run("remove", "net@v0.1.2").exit_code == 0
        assert client.entry("net").version == "v0.1.1"
        assert client.get_model_info("net", "v0.1.2") is None


def test_a_write_through_the_server_is_in_the_next_answer(repo: Path, run, tmp_path: Path):  # type: ignore[no-untyped-def]
    assert (
        run("register", make_safetensors(tmp_path / "a.safetensors", 1), "--name", "net").exit_code
        == 0
    )
    with mreg_serve(repo) as server:
        assert info(server, "net")["version"] == "v0.1.0"
        client = mreg.Client(server.url, WRITER)
        client.register_model("net", make_safetensors(tmp_path / "b.safetensors", 2))
        assert info(server, "net")["version"] == "v0.1.1"
        client.stage("net", "v0.1.1", "prod")
        assert info(server, "net", "#prod")["version"] == "v0.1.1"


def test_the_look_of_the_refs_changes_with_every_ref_change(repo: Path, run, tmp_path: Path):  # type: ignore[no-untyped-def]
    cache = ReadCache(repo)
    first = cache.refs_look()
    assert cache.refs_look() == first  # reading does not change it
    git(repo, "commit", "-q", "--allow-empty", "-m", "a commit moves the branch")
    second = cache.refs_look()
    assert second != first
    git(repo, "tag", "x@v1.0.0")
    third = cache.refs_look()
    assert third != second
    git(repo, "checkout", "-q", "-b", "other")
    assert cache.refs_look() != third  # HEAD names another branch


def test_an_answer_is_computed_again_when_the_refs_change_or_it_ages(repo: Path) -> None:
    calls: list[int] = []

    def answer() -> int:
        calls.append(1)
        return len(calls)

    git(repo, "commit", "-q", "--allow-empty", "-m", "something to tag")
    cache = ReadCache(repo, max_age=3600, recheck=0)
    assert cache.get("q", answer) == 1
    assert cache.get("q", answer) == 1  # kept
    git(repo, "tag", "y@v1.0.0")
    assert cache.get("q", answer) == 2  # a new tag: computed again
    cache.max_age = 0
    assert cache.get("q", answer) == 3  # too old: computed again
