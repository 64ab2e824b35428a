"""Remotes in real S3 (SeaweedFS on loopback): push, pull, status, verify, gc, and the ways a
remote fails: wrong or missing credentials, no server, no bucket, a server killed mid-transfer."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import (
    Result,
    assert_one_line_error,
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    make_table,
    manifest_path,
)
from safetensors.numpy import load_file, save_file
from seaweed import ACCESS_KEY, SECRET_KEY, Seaweed, start_seaweed

import mreg.storage.landing as landing
import mreg.storage.s3 as s3_storage

PREFIX = "team/models/"

# -- helpers -------------------------------------------------------------------------------


def objects(server: Seaweed, bucket: str) -> dict[str, tuple[int, str]]:
    """Every object in ``bucket``: key -> (size, ETag)."""
    client = server.client()
    found = {}
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            found[item["Key"]] = (int(item["Size"]), item["ETag"])
    return found


def manifest_files(manifest: Path) -> dict[str, dict[str, object]]:
    """The data files a manifest references: path -> {path, size, sha256}."""
    files = tomllib.loads(manifest.read_text())["lance"]["files"]
    return {f["path"]: f for f in files}


def added_by_full_path(run, path: Path, *args: str) -> Path:  # type: ignore[no-untyped-def]
    """``mreg add`` of ``path`` given in full (helpers' ``added`` gives its name); returns the
    manifest it wrote."""
    result = run("add", str(path), *args)
    assert result.exit_code == 0, result.stderr
    return manifest_path(path)


def pushed(run, *args: str) -> Result:  # type: ignore[no-untyped-def]
    result = run("push", *args)
    assert result.exit_code == 0, result.stderr
    return result


def fresh_clone(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> Path:
    """A git clone of ``repo`` (so an empty cache), made the current directory."""
    clone = tmp_path / name
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    return clone


def sha256(path: Path) -> str:
    return sha256_bytes(path.read_bytes())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mreg_command(*args: str) -> list[str]:
    """The installed console script, as a user runs it."""
    script = shutil.which("mreg")
    assert script is not None, "the mreg console script is not installed"
    return [script, *args]


# -- push and pull ---------------------------------------------------------------------------


@pytest.fixture(params=["whole objects", "ranged parts"])
def download_mode(request, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """Downloads as one GET per object, or (as for objects of 64 MiB and more) as parallel
    ranged GETs of small parts hashed in order: the sizes shrink so small test files take it."""
    monkeypatch.setattr(landing, "CHUNK", 2 * landing.ALIGN)  # many chunks, a partial last one
    if request.param == "ranged parts":
        monkeypatch.setattr(s3_storage, "RANGED_DOWNLOAD_FROM", 1)
        monkeypatch.setattr(s3_storage, "DOWNLOAD_PART_SIZE", landing.ALIGN)
    return str(request.param)


def test_push_then_pull_in_a_fresh_clone_restores_equal_tensors_and_rows(
    repo, run, s3_remote, tmp_path, monkeypatch, download_mode
):
    make_safetensors(repo / "m.safetensors", layers=6, width=64)
    make_table(repo / "t.parquet", rows=5000)
    added_by_full_path(run, repo / "m.safetensors")
    added_by_full_path(run, repo / "t.parquet")
    commit_all(repo, "add artifacts")
    pushed(run)

    clone = fresh_clone(repo, tmp_path, monkeypatch, "clone")
    assert not (clone / "m.safetensors").exists()
    result = run("pull")

    assert result.exit_code == 0, result.stderr
    assert "checked out 2 artifact(s)" in result.stdout
    original, restored = load_file(repo / "m.safetensors"), load_file(clone / "m.safetensors")
    assert original.keys() == restored.keys()
    for name, array in original.items():
        np.testing.assert_array_equal(restored[name], array)
    assert (clone / "m.safetensors").read_bytes() == (repo / "m.safetensors").read_bytes()
    assert pq.read_table(clone / "t.parquet").equals(pq.read_table(repo / "t.parquet"))
    verify = run("verify", "-r", "s3")
    assert verify.exit_code == 0, verify.stdout + verify.stderr


def test_a_second_push_uploads_nothing(repo, run, s3_remote, seaweed, s3_bucket):
    added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    added_by_full_path(run, make_table(repo / "t.parquet"))
    first = pushed(run)
    before = objects(seaweed, s3_bucket)
    assert not first.stdout.startswith("pushed 0 ")
    assert len(before) == int(first.stdout.split()[1])

    again = pushed(run)

    assert again.stdout.startswith("pushed 0 file(s)")
    assert objects(seaweed, s3_bucket) == before


def test_push_uploads_only_files_the_remote_lacks_after_an_append(
    repo, run, s3_remote, seaweed, s3_bucket
):
    manifest = added_by_full_path(run, make_table(repo / "t.parquet", rows=1000))
    pushed(run)
    old_files = set(manifest_files(manifest))
    before = objects(seaweed, s3_bucket)

    added_by_full_path(
        run,
        make_table(repo / "more.parquet", rows=50, start=1000),
        "--name",
        "t",
        "--mode",
        "append",
    )
    new_files = set(manifest_files(manifest)) - old_files
    result = pushed(run)

    after = objects(seaweed, s3_bucket)
    assert new_files and result.stdout.startswith(f"pushed {len(new_files)} file(s)")
    assert set(after) == set(before) | {PREFIX + p for p in new_files}
    assert {k: after[k] for k in before} == before


def test_objects_land_under_the_configured_prefix_and_nowhere_else(
    repo, run, s3_remote, seaweed, s3_bucket
):
    manifest = added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    pushed(run)

    listing = objects(seaweed, s3_bucket)
    assert {key: size for key, (size, _) in listing.items()} == {
        PREFIX + path: entry["size"] for path, entry in manifest_files(manifest).items()
    }
    # The same bucket under another prefix is another remote, which holds nothing yet.
    url = f"s3://{s3_bucket}/other"
    assert run("remote", "add", "other", url, "--endpoint-url", seaweed.endpoint).exit_code == 0
    assert "not pushed" in run("status", "-r", "other").stdout
    assert "in sync" in run("status", "-r", "s3").stdout


def test_status_says_not_pushed_before_a_push_and_in_sync_after(repo, run, s3_remote):
    added_by_full_path(run, make_safetensors(repo / "m.safetensors"))

    before = run("status", "-r", "s3")
    assert before.exit_code == 0, before.stderr
    assert "m (m.safetensors): not pushed" in before.stdout
    pushed(run)
    after = run("status", "-r", "s3")

    assert after.exit_code == 0, after.stderr
    assert "m (m.safetensors): in sync" in after.stdout
    assert json.loads(run("status", "-r", "s3", "--json").stdout)[0]["states"] == ["in sync"]


# -- verify ----------------------------------------------------------------------------------


def corrupt_object(server: Seaweed, bucket: str, key: str) -> None:
    """Replace the object's bytes with different bytes of the same length."""
    client = server.client()
    body = bytearray(client.get_object(Bucket=bucket, Key=key)["Body"].read())
    middle = len(body) // 2
    body[middle : middle + 8] = bytes(b ^ 0xFF for b in body[middle : middle + 8])
    client.put_object(Bucket=bucket, Key=key, Body=bytes(body))


def test_verify_remote_finds_an_object_corrupted_on_the_server(
    repo, run, s3_remote, seaweed, s3_bucket
):
    manifest = added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    pushed(run)
    (path, *_) = sorted(manifest_files(manifest))
    corrupt_object(seaweed, s3_bucket, PREFIX + path)
    before = objects(seaweed, s3_bucket)

    result = run("verify", "-r", "s3")

    assert_refused(result, "1 file(s) missing or corrupt")
    assert f"m: {path}: corrupt on remote" in result.stdout
    assert "remote 's3'" in result.stdout
    assert objects(seaweed, s3_bucket) == before
    assert run("verify").exit_code == 0  # the cache itself is sound


def test_verify_remote_finds_an_object_missing_from_the_server(
    repo, run, s3_remote, seaweed, s3_bucket
):
    manifest = added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    pushed(run)
    (path, *_) = sorted(manifest_files(manifest))
    seaweed.client().delete_object(Bucket=s3_bucket, Key=PREFIX + path)

    result = run("verify", "-r", "s3", "--json")

    assert_refused(result, "1 file(s) missing or corrupt")
    problems = json.loads(result.stdout)
    assert [(p["path"], p["reason"]) for p in problems] == [(path, "missing from remote")]
    assert "not pushed" in run("status", "-r", "s3").stdout
    assert pushed(run).stdout.startswith("pushed 1 file(s)")
    assert run("verify", "-r", "s3").exit_code == 0


def test_pull_refuses_an_object_corrupted_on_the_server_and_keeps_it_out_of_the_cache(
    repo, run, s3_remote, seaweed, s3_bucket, tmp_path, monkeypatch, download_mode
):
    manifest = added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    commit_all(repo, "add m")
    pushed(run)
    (path, *_) = sorted(manifest_files(manifest))
    corrupt_object(seaweed, s3_bucket, PREFIX + path)
    clone = fresh_clone(repo, tmp_path, monkeypatch, "clone")

    assert_refused(run("pull"), path, "sha256")

    assert not (clone / ".mreg" / "cache" / path).exists()
    assert not (clone / "m.safetensors").exists()


# -- gc --------------------------------------------------------------------------------------


@pytest.mark.parametrize("keeper", ["tag", "branch"])
def test_gc_remote_deletes_only_unreferenced_objects(
    repo, run, s3_remote, seaweed, s3_bucket, tmp_path, monkeypatch, keeper
):
    manifest = added_by_full_path(run, make_safetensors(repo / "m.safetensors", seed=1))
    commit_all(repo, "m v1")
    if keeper == "tag":
        assert run("tag", "m", "v1.0.0").exit_code == 0
    else:
        git(repo, "branch", "keep-v1")
    v1 = set(manifest_files(manifest))
    pushed(run)
    # overwrite: a new version
    added_by_full_path(run, make_safetensors(repo / "m.safetensors", seed=2))
    commit_all(repo, "m v2")
    v2 = set(manifest_files(manifest))
    pushed(run)
    scratch = added_by_full_path(run, make_table(repo / "scratch.parquet"))
    pushed(run)
    garbage = set(manifest_files(scratch))
    scratch.unlink()  # never committed: its data are referenced by nothing now
    assert v1 and v2 and garbage and not v1 & v2 and not garbage & (v1 | v2)
    before = objects(seaweed, s3_bucket)

    # Just pushed: spared by the grace period unless it is waived.
    assert json.loads(run("gc", "-r", "s3", "--json").stdout)["too_young"] == sorted(garbage)
    listed = run("gc", "-r", "s3", "--json", "--older-than", "0s")
    assert listed.exit_code == 0, listed.stderr
    assert set(json.loads(listed.stdout)["unused"]) == garbage
    assert objects(seaweed, s3_bucket) == before

    deleted = run("gc", "-r", "s3", "--force", "--older-than", "0s")
    assert deleted.exit_code == 0, deleted.stderr
    assert f"{len(garbage)} file(s)" in deleted.stdout and "deleted" in deleted.stdout
    assert set(objects(seaweed, s3_bucket)) == {PREFIX + p for p in v1 | v2}
    assert json.loads(run("gc", "-r", "s3", "--json", "--older-than", "0s").stdout)["unused"] == []

    # The old version still comes back from the remote alone.
    clone = fresh_clone(repo, tmp_path, monkeypatch, "clone")
    rev = "m@v1.0.0" if keeper == "tag" else "m@origin/keep-v1"
    result = run("pull", rev)
    assert result.exit_code == 0, result.stderr
    expected = make_safetensors(tmp_path / "v1.safetensors", seed=1)
    assert (clone / "m.safetensors").read_bytes() == expected.read_bytes()


# -- a remote that refuses or is not there ---------------------------------------------------


@pytest.fixture
def pushed_then_changed(repo, run, s3_remote, seaweed, s3_bucket):  # type: ignore[no-untyped-def]
    """v1 of ``m`` committed and pushed, v2 added but neither committed nor pushed; returns the
    bucket's listing."""
    added_by_full_path(run, make_safetensors(repo / "m.safetensors", seed=1))
    commit_all(repo, "m v1")
    pushed(run)
    added_by_full_path(run, make_safetensors(repo / "m.safetensors", seed=2))
    return objects(seaweed, s3_bucket)


def back_to_v1_with_an_empty_cache(repo: Path) -> None:
    """What a fresh clone has: a manifest whose data are all on the remote, none in the cache."""
    git(repo, "checkout", "--", "m.safetensors.mreg.toml")
    shutil.rmtree(repo / ".mreg" / "cache")


CREDENTIAL_COMMANDS = [
    ["push"],
    ["status", "-r", "s3"],
    ["verify", "-r", "s3"],
    ["gc", "-r", "s3", "--force"],
    ["fetch"],
]


@pytest.mark.parametrize("command", CREDENTIAL_COMMANDS, ids=lambda c: c[0])
def test_wrong_credentials_are_named_and_change_nothing_on_the_remote(
    repo, run, pushed_then_changed, seaweed, s3_bucket, monkeypatch, command
):
    if command[0] == "fetch":
        back_to_v1_with_an_empty_cache(repo)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")

    assert_refused(run(*command), "remote 's3'", "credentials")

    assert objects(seaweed, s3_bucket) == pushed_then_changed


def test_an_unknown_access_key_is_named_as_a_credentials_problem(
    repo, run, pushed_then_changed, seaweed, s3_bucket, monkeypatch
):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "nobody")

    assert_refused(run("push"), "remote 's3'", "credentials")

    assert objects(seaweed, s3_bucket) == pushed_then_changed


@pytest.mark.parametrize("command", CREDENTIAL_COMMANDS, ids=lambda c: c[0])
def test_missing_credentials_are_named_and_change_nothing_on_the_remote(
    repo, run, pushed_then_changed, seaweed, s3_bucket, monkeypatch, command
):
    if command[0] == "fetch":
        back_to_v1_with_an_empty_cache(repo)
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    assert_refused(run(*command), "remote 's3'", "no credentials", "AWS_ACCESS_KEY_ID")

    assert objects(seaweed, s3_bucket) == pushed_then_changed


def test_credentials_in_the_local_config_work_and_stay_out_of_git(
    repo, run, seaweed, s3_bucket, monkeypatch
):
    url = f"s3://{s3_bucket}/team/models"
    result = run(
        "remote", "add", "s3", url, "--default", "--endpoint-url", seaweed.endpoint,
        "--access-key-id", ACCESS_KEY, "--secret-access-key", SECRET_KEY,
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    added_by_full_path(run, make_safetensors(repo / "m.safetensors"))

    assert pushed(run).stdout.startswith("pushed 1 file(s)")
    assert SECRET_KEY not in (repo / ".mreg" / "config.toml").read_text()
    assert SECRET_KEY in (repo / ".mreg" / "config.local.toml").read_text()
    assert "config.local.toml" not in git(repo, "status", "--porcelain", "--untracked-files=all")


def test_an_unreachable_endpoint_is_named_and_the_command_returns(repo, run, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    endpoint = f"http://127.0.0.1:{closed_port()}"
    assert run("remote", "add", "dead", "s3://bucket/p", "--endpoint-url", endpoint).exit_code == 0
    added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    commit_all(repo, "add m")

    # A subprocess, so that a hang fails the test instead of stalling the suite.
    done = subprocess.run(
        mreg_command("push", "-r", "dead"), capture_output=True, text=True, timeout=120
    )

    assert done.returncode != 0
    assert_one_line_error(done.stderr, "remote 'dead'", "unreachable", endpoint)


def remote_to_a_missing_bucket(repo, run, seaweed, monkeypatch) -> str:  # type: ignore[no-untyped-def]
    """Remote 'nob' pointing at a bucket that does not exist, and a committed model; the bucket."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    bucket = f"no-such-bucket-{os.getpid()}"
    url = f"s3://{bucket}/p"
    assert run("remote", "add", "nob", url, "--endpoint-url", seaweed.endpoint).exit_code == 0
    added_by_full_path(run, make_safetensors(repo / "m.safetensors"))
    commit_all(repo, "add m")
    return bucket


def test_a_bucket_that_does_not_exist_is_named(repo, run, seaweed, monkeypatch):
    bucket = remote_to_a_missing_bucket(repo, run, seaweed, monkeypatch)

    assert_refused(run("push", "-r", "nob"), "remote 'nob'", f"bucket '{bucket}' does not exist")
    assert_refused(run("status", "-r", "nob"), f"bucket '{bucket}' does not exist")

    names = [b["Name"] for b in seaweed.client().list_buckets()["Buckets"]]
    assert bucket not in names


def test_pulling_from_a_bucket_that_does_not_exist_names_the_bucket(
    repo, run, seaweed, monkeypatch, tmp_path
):
    bucket = remote_to_a_missing_bucket(repo, run, seaweed, monkeypatch)
    clone = fresh_clone(repo, tmp_path, monkeypatch, "clone")

    assert_refused(run("pull", "-r", "nob"), "remote 'nob'", f"bucket '{bucket}' does not exist")

    assert not (clone / "m.safetensors").exists()


# -- a server killed in the middle of a transfer ---------------------------------------------


class Server:
    """A SeaweedFS server of this test alone, that can be killed and started again in place."""

    def __init__(self, base: Path) -> None:
        self.current = start_seaweed(base)

    @property
    def endpoint(self) -> str:
        return self.current.endpoint

    def kill(self) -> None:
        os.kill(self.current.process.pid, signal.SIGKILL)
        self.current.process.wait(timeout=30)

    def restart(self, timeout: float = 90.0) -> None:
        """The same command on the same data folder and ports, once it serves reads and writes."""
        old = self.current
        assert old.process.poll() is not None
        # A short election timeout: alone, the master would wait ~20 s to elect itself again.
        command = [*old.process.args, "-master.electionTimeout=1s"]
        with open(old.log_path, "ab") as log:
            process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=old.data_dir.parent,
                start_new_session=True,
            )
        self.current = Seaweed(process, old.endpoint, old.data_dir, old.log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert process.poll() is None, f"weed exited; see {old.log_path}"
            try:
                client = self.current.client()
                client.list_buckets()
                client.put_object(Bucket="mreg-ready", Key="probe-again", Body=b"ok")
                return
            except Exception:
                time.sleep(0.3)
        raise AssertionError(f"SeaweedFS did not come back; see {old.log_path}")

    def size_on_disk(self) -> int:
        return sum(p.stat().st_size for p in self.current.data_dir.rglob("*") if p.is_file())

    def stop(self) -> None:
        """Kill it (its data are thrown away) and remove the sockets it left in the temp folder."""
        if self.current.process.poll() is None:
            self.kill()
        ports = [arg.split("=")[1] for arg in self.current.process.args if "port=" in arg]
        for port in ports + [str(int(p) + 10000) for p in ports if p != "0"]:
            for sock in Path(tempfile.gettempdir()).glob(f"seaweedfs-*-{port}.sock"):
                sock.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def killable_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that kill it; each test starts it again when done."""
    base = tmp_path_factory.mktemp("weed")
    server = Server(base)
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)


_kill_buckets = itertools.count()


@pytest.fixture
def kill_remote(
    repo: Path,
    run: Callable[..., Result],
    killable_server: Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """The repo's default remote ``s3``, a fresh bucket on the killable server; its name."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    if killable_server.current.process.poll() is not None:  # an earlier test failed midway
        killable_server.restart()
    bucket = f"kill-{next(_kill_buckets)}"
    killable_server.current.create_bucket(bucket)
    url = f"s3://{bucket}/models"
    result = run(
        "remote", "add", "s3", url, "--default", "--endpoint-url", killable_server.endpoint
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    yield bucket
    # These tests write most of a GiB; do not leave it for pytest's retention to keep.
    shutil.rmtree(tmp_path, ignore_errors=True)


def make_large_model(path: Path, tensors: int = 2, mib: int = 72) -> Path:
    """``tensors`` random int32 tensors of ``mib`` MiB each. Lance keeps each in a blob file of
    its own, so over 64 MiB every one of them travels as a multipart upload."""
    rng = np.random.default_rng(7)
    arrays = {
        f"block.{i}.weight": np.frombuffer(rng.bytes(mib << 20), dtype=np.int32).reshape(-1, 1024)
        for i in range(tensors)
    }
    save_file(arrays, str(path))
    return path


def wait_for(condition, what: str, process: subprocess.Popen[str]) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` until it holds; fails if ``process`` ends first."""
    while not condition():
        if process.poll() is not None:
            out, err = process.communicate()
            raise AssertionError(f"the command ended before {what}: {out} {err}")
        time.sleep(0.01)


def cache_matches_manifest(clone: Path, files: dict[str, dict[str, object]]) -> None:
    """Every file in the cache is complete: its sha256 is the one the manifest records."""
    cache = clone / ".mreg" / "cache"
    for path in (cache / "data").rglob("*"):
        if path.is_file():
            rel = path.relative_to(cache).as_posix()
            assert rel in files, f"{rel} is in the cache but in no manifest"
            assert sha256(path) == files[rel]["sha256"], f"{rel} is partial or corrupt"
    leftovers = [p for p in (clone / ".mreg" / "tmp").rglob("*") if p.is_file()]
    assert leftovers == []


@pytest.mark.slow
def test_a_push_cut_off_by_the_server_dying_fails_cleanly_and_a_re_run_completes(
    repo, run, killable_server, kill_remote, tmp_path, monkeypatch
):
    server, bucket = killable_server, kill_remote
    manifest = added_by_full_path(run, make_large_model(repo / "big.safetensors"))
    files = manifest_files(manifest)
    assert sum(int(f["size"]) > 64 << 20 for f in files.values()) == 2  # multipart uploads
    commit_all(repo, "add big")
    baseline = server.size_on_disk()

    push = subprocess.Popen(
        mreg_command("push"), cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(lambda: server.size_on_disk() > baseline + (24 << 20), "the upload began", push)
    server.kill()
    out, err = push.communicate(timeout=180)

    assert push.returncode != 0, out
    assert_one_line_error(err, "remote 's3'")

    server.restart()
    # Nothing half-written hides behind a key: what is there is complete.
    client = server.current.client()
    present = objects(server.current, bucket)
    for key, (size, _) in present.items():
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        entry = files[key.removeprefix("models/")]
        assert (size, sha256_bytes(body)) == (entry["size"], entry["sha256"]), f"{key} is partial"
    assert len(present) < len(files)

    again = run("push")
    assert again.exit_code == 0, again.stderr
    assert again.stdout.startswith(f"pushed {len(files) - len(present)} file(s)")
    after = {k.removeprefix("models/"): s for k, (s, _) in objects(server.current, bucket).items()}
    assert after == {p: f["size"] for p, f in files.items()}

    clone = fresh_clone(repo, tmp_path, monkeypatch, "clone")
    result = run("pull")
    assert result.exit_code == 0, result.stderr
    assert sha256(clone / "big.safetensors") == sha256(repo / "big.safetensors")
    verify = run("verify", "-r", "s3")
    assert verify.exit_code == 0, verify.stdout + verify.stderr


@pytest.mark.slow
def test_a_pull_cut_off_by_the_server_dying_leaves_no_partial_file_and_a_re_run_completes(
    repo, run, killable_server, kill_remote, tmp_path, monkeypatch
):
    server = killable_server
    manifest = added_by_full_path(run, make_large_model(repo / "big.safetensors"))
    files = manifest_files(manifest)
    commit_all(repo, "add big")
    pushed(run)
    clone = fresh_clone(repo, tmp_path, monkeypatch, "clone")
    tmp = clone / ".mreg" / "tmp"

    def downloading() -> bool:
        try:
            return any(p.stat().st_size > 0 for p in tmp.iterdir())
        except FileNotFoundError:  # the folder is not made yet, or a file was just renamed
            return False

    pull = subprocess.Popen(
        mreg_command("pull"), cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(downloading, "the download began", pull)
    server.kill()
    out, err = pull.communicate(timeout=180)

    assert pull.returncode != 0, out
    assert_one_line_error(err, "remote 's3'")
    cache_matches_manifest(clone, files)
    assert not (clone / "big.safetensors").exists()
    # Nor the temporary file the tensors were landing in.
    assert not [p.name for p in clone.iterdir() if p.name.startswith(".big.safetensors")]

    server.restart()
    again = run("pull")
    assert again.exit_code == 0, again.stderr
    cache_matches_manifest(clone, files)
    assert sha256(clone / "big.safetensors") == sha256(repo / "big.safetensors")
    assert run("verify").exit_code == 0
