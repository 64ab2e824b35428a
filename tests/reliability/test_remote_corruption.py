"""Corruption at rest on the remote (a flipped bit, a truncated object, a deleted object), in a
local-directory remote and in S3: ``fetch`` and ``pull`` keep it out of the cache and name the
file, ``verify --remote`` names it, and ``push --repair`` from an intact clone mends it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from fault_tools import clone, make_model, recorded_files
from helpers import assert_refused, commit_all
from seaweed import Seaweed

Damage = Callable[[bytes], bytes | None]  # new bytes; None: deleted


def _flip(data: bytes) -> bytes:
    changed = bytearray(data)
    changed[len(changed) // 3] ^= 0x01
    return bytes(changed)


DAMAGE: dict[str, Damage] = {
    "flipped bit": _flip,
    "truncated": lambda data: data[: len(data) // 2],
    "deleted": lambda data: None,
}


class RemoteFiles:
    """Reads and damages objects of the remote behind the repo, by cache path."""

    def __init__(self, read: Callable[[str], bytes], write: Callable[[str, bytes | None], None]):
        self.read, self.write = read, write

    def damage(self, path: str, how: Damage) -> None:
        self.write(path, how(self.read(path)))


@pytest.fixture(params=["local", "s3"])
def remote(request, repo, run, tmp_path) -> RemoteFiles:  # type: ignore[no-untyped-def]
    if request.param == "local":
        root = tmp_path / "remote"
        assert run("remote", "add", "origin", str(root), "--default").exit_code == 0

        def write_local(path: str, data: bytes | None) -> None:
            if data is None:
                (root / path).unlink()
            else:
                (root / path).write_bytes(data)

        return RemoteFiles(lambda path: (root / path).read_bytes(), write_local)
    request.getfixturevalue("s3_remote")
    seaweed: Seaweed = request.getfixturevalue("seaweed")
    bucket = request.getfixturevalue("s3_bucket")
    client = seaweed.client()
    prefix = "team/models/"

    def write_s3(path: str, data: bytes | None) -> None:
        if data is None:
            client.delete_object(Bucket=bucket, Key=prefix + path)
        else:
            client.put_object(Bucket=bucket, Key=prefix + path, Body=data)

    return RemoteFiles(
        lambda path: client.get_object(Bucket=bucket, Key=prefix + path)["Body"].read(), write_s3
    )


@pytest.fixture
def pushed(repo: Path, run, remote: RemoteFiles) -> tuple[bytes, str]:  # type: ignore[no-untyped-def]
    """A pushed model's bytes, and the data file that was damaged on the remote."""
    make_model(repo / "m.safetensors", tensors=4, kib=64)
    assert run("add", "m.safetensors").exit_code == 0
    commit_all(repo, "model")
    assert run("push").exit_code == 0
    return (repo / "m.safetensors").read_bytes(), sorted(recorded_files(repo))[0]


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_remote_file_is_named_kept_out_of_the_cache_and_mended_by_push_repair(
    damage, repo, run, remote, pushed, tmp_path, monkeypatch
):
    data, path = pushed
    remote.damage(path, DAMAGE[damage])

    check = run("verify", "--remote", remote_name(run))
    assert check.exit_code != 0 and path in check.stdout
    assert_refused(check, "missing or corrupt", "push --repair")

    other = clone(repo, tmp_path / "clone")
    monkeypatch.chdir(other)
    for command in ("fetch", "pull"):
        assert_refused(run(command), path)
        assert not (other / ".mreg" / "cache" / path).exists()
        assert not (other / "m.safetensors").exists()

    monkeypatch.chdir(repo)
    result = run("push", "--repair")
    assert result.exit_code == 0, result.stderr
    assert run("verify", "--remote", remote_name(run)).exit_code == 0
    monkeypatch.chdir(other)
    assert run("pull").exit_code == 0
    assert (other / "m.safetensors").read_bytes() == data


def test_a_plain_push_does_not_see_a_flipped_bit_but_push_repair_does(repo, run, remote, pushed):
    _, path = pushed
    remote.damage(path, _flip)

    assert run("push").exit_code == 0
    assert run("verify", "--remote", remote_name(run)).exit_code != 0  # same size: not resent
    repaired = run("push", "--repair")

    assert repaired.exit_code == 0 and "pushed 1 file(s)" in repaired.stdout
    assert run("verify", "--remote", remote_name(run)).exit_code == 0


def remote_name(run) -> str:  # type: ignore[no-untyped-def]
    return str(json.loads(run("remote", "list", "--json").stdout)[0]["name"])
