"""S3 faults through a real proxy in front of a real SeaweedFS: errors, cut bodies, flipped
bits, lost acknowledgements, a dead server. Each ends in success after retries or in a one-line
error; never a corrupt file in the cache or the work tree, never a partial object under its
final name on the remote; and the same command without faults then converges."""

from __future__ import annotations

from pathlib import Path

import pytest
from fault_tools import (
    Fault,
    FaultProxy,
    assert_cache_holds_only_good_files,
    clone,
    make_model,
    recorded_files,
    sha256,
    temp_files,
)
from helpers import add_s3_remote, assert_refused, commit_all, make_table
from seaweed import Seaweed

PREFIX = "team/models/"


@pytest.fixture
def proxy(seaweed: Seaweed) -> FaultProxy:
    started = FaultProxy(seaweed.endpoint)
    yield started
    started.die()


@pytest.fixture
def proxied_remote(repo, run, proxy, s3_bucket, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """The repo's default remote is the bucket, reached through the proxy."""
    url = f"s3://{s3_bucket}/{PREFIX.rstrip('/')}"
    return add_s3_remote(run, monkeypatch, url, proxy.endpoint)


@pytest.fixture
def tracked(repo: Path, run, proxied_remote) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """A model and a table, added and committed (not pushed); their bytes by path."""
    make_model(repo / "m.safetensors", tensors=6, kib=64)
    make_table(repo / "t.parquet", rows=2_000)
    for name in ("m.safetensors", "t.parquet"):
        assert run("add", name).exit_code == 0
    commit_all(repo, "track")
    return {name: (repo / name).read_bytes() for name in ("m.safetensors", "t.parquet")}


def remote_objects(seaweed: Seaweed, bucket: str) -> dict[str, bytes]:
    """Every object under the prefix, read straight from the server (not through the proxy)."""
    client = seaweed.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=PREFIX):
        for item in page.get("Contents", []):
            body = client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
            found[item["Key"][len(PREFIX) :]] = body
    return found


def assert_remote_objects_complete(seaweed: Seaweed, bucket: str, known: dict[str, str]) -> None:
    for path, data in remote_objects(seaweed, bucket).items():
        assert path in known, f"unknown object on the remote: {path}"
        assert sha256(data) == known[path], f"partial or corrupt object on the remote: {path}"


def outcome_is_clean(result) -> None:  # type: ignore[no-untyped-def]
    """Success, or a non-zero exit with one error line."""
    if result.exit_code != 0:
        assert_refused(result)


# -- pull ---------------------------------------------------------------------------------

PULL_FAULTS = {
    "two 503 answers are retried": (Fault("status", status=503, times=2), True),
    "two 500 answers are retried": (Fault("status", status=500, times=2), True),
    "a lost answer to a GET is retried": (Fault("lost_ack", times=1), True),
    "slow answers still arrive": (Fault("delay", seconds=0.3, times=100), True),
    "503 on every try is an error": (Fault("status", status=503, times=100), False),
    "a body cut short is an error": (Fault("cut", after=100, times=100), False),
    "a flipped bit in a body is an error": (Fault("flip", times=100), False),
}


@pytest.mark.parametrize("case", list(PULL_FAULTS), ids=list(PULL_FAULTS))
def test_a_pull_through_a_faulty_network_ends_clean_and_a_rerun_converges(
    case, repo, run, tracked, proxy, tmp_path, monkeypatch
):
    fault, succeeds = PULL_FAULTS[case]
    assert run("push").exit_code == 0
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    known = recorded_files(other)
    proxy.faults = [fault]

    result = run("pull")

    assert fault.hits > 0, "the fault never took a request"
    outcome_is_clean(result)
    assert (result.exit_code == 0) is succeeds, result.stderr
    assert_cache_holds_only_good_files(other, known)
    for name, data in tracked.items():
        assert not (other / name).exists() or (other / name).read_bytes() == data
    assert temp_files(other) == []
    if not succeeds:
        assert "s3" in result.stderr or "sha256" in result.stderr

    proxy.faults = []
    assert run("pull").exit_code == 0
    for name, data in tracked.items():
        assert (other / name).read_bytes() == data
    assert run("verify").exit_code == 0


def test_a_flipped_bit_in_a_download_is_named_and_kept_out_of_the_cache(
    repo, run, tracked, proxy, tmp_path, monkeypatch
):
    assert run("push").exit_code == 0
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    proxy.faults = [Fault("flip", times=100)]

    result = run("fetch", "-j", "1")

    # Caught by the response's S3 checksum, or else by the manifest's sha256.
    line = assert_refused(result)
    assert "checksum" in line or "sha256" in line
    assert any(path in line for path in recorded_files(other))
    assert not any((other / ".mreg" / "cache" / p).exists() for p in recorded_files(other))


def test_a_server_that_dies_makes_pull_say_the_remote_is_unreachable(
    repo, run, tracked, proxy, tmp_path, monkeypatch
):
    assert run("push").exit_code == 0
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    proxy.die()

    result = run("pull")

    assert_refused(result, "unreachable")
    assert not (other / "m.safetensors").exists()
    proxy.start()  # back on the same port
    assert run("pull").exit_code == 0
    assert (other / "m.safetensors").read_bytes() == tracked["m.safetensors"]


# -- push ---------------------------------------------------------------------------------

PUSH_FAULTS = {
    "two 503 answers are retried": (Fault("status", methods=("PUT",), times=2), True),
    "a lost answer to a PUT is retried": (Fault("lost_ack", methods=("PUT",), times=1), True),
    "an upload cut short is retried": (
        Fault("cut_upload", methods=("PUT",), after=1000, times=1),
        True,
    ),
    "503 on every try is an error": (Fault("status", methods=("PUT",), times=100), False),
    "uploads cut short every time are an error": (
        Fault("cut_upload", methods=("PUT",), after=1000, times=100),
        False,
    ),
}


@pytest.mark.parametrize("case", list(PUSH_FAULTS), ids=list(PUSH_FAULTS))
def test_a_push_through_a_faulty_network_leaves_only_whole_objects_and_a_rerun_converges(
    case, repo, run, tracked, proxy, seaweed, s3_bucket, tmp_path, monkeypatch
):
    fault, succeeds = PUSH_FAULTS[case]
    known = recorded_files(repo)
    proxy.faults = [fault]

    result = run("push")

    assert fault.hits > 0, "the fault never took a request"
    outcome_is_clean(result)
    assert (result.exit_code == 0) is succeeds, result.stderr
    assert_remote_objects_complete(seaweed, s3_bucket, known)

    proxy.faults = []
    assert run("push").exit_code == 0
    assert set(remote_objects(seaweed, s3_bucket)) == set(known)
    assert run("verify", "--remote", "s3").exit_code == 0
    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    assert run("pull").exit_code == 0
    for name, data in tracked.items():
        assert (other / name).read_bytes() == data


def test_a_bit_flipped_on_the_way_up_never_becomes_a_trusted_object(
    repo, run, tracked, proxy, seaweed, s3_bucket
):
    """The server refuses the upload (its checksum does not match), or the object it keeps is
    caught by ``verify --remote``: never a corrupt object that looks whole."""
    known = recorded_files(repo)
    proxy.faults = [Fault("flip", methods=("PUT",), times=100)]

    result = run("push")

    outcome_is_clean(result)
    proxy.faults = []
    stored = remote_objects(seaweed, s3_bucket)
    corrupt = [p for p, data in stored.items() if sha256(data) != known.get(p)]
    if corrupt:
        check = run("verify", "--remote", "s3")
        assert check.exit_code != 0
        assert all(p in check.stdout + check.stderr for p in corrupt)


def test_a_server_that_dies_makes_push_say_the_remote_is_unreachable(
    repo, run, tracked, proxy, seaweed, s3_bucket
):
    proxy.die()

    assert_refused(run("push"), "unreachable")

    assert remote_objects(seaweed, s3_bucket) == {}
    proxy.start()
    assert run("push").exit_code == 0
    assert run("verify", "--remote", "s3").exit_code == 0


def test_verify_remote_through_a_failing_network_names_the_remote_and_exits_non_zero(
    repo, run, tracked, proxy
):
    assert run("push").exit_code == 0
    proxy.faults = [Fault("status", status=503, times=1000)]

    result = run("verify", "--remote", "s3")

    assert result.exit_code != 0
    assert "Traceback" not in result.stderr
    assert "503" in result.stdout + result.stderr or "SlowDown" in result.stdout + result.stderr
    proxy.faults = []
    assert run("verify", "--remote", "s3").exit_code == 0
