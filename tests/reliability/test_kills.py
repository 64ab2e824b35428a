"""Kills at random points: every writing command runs as the real ``mreg`` process and gets
SIGKILL (or Ctrl-C's SIGINT) after a seeded random delay; then the same command runs again.

Invariants after the kill: work-tree files and manifests are wholly the old or the new version
(never a mix), every file in the cache has its recorded sha256, every object on the remote is
complete, and no temporary file is left in the work tree. After the re-run: the command's
result, ``mreg verify`` exit 0, ``mreg status`` in sync."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from fault_tools import (
    Finished,
    assert_cache_holds_only_good_files,
    clone,
    kill_after,
    make_model,
    recorded_files,
    run_mreg,
    sha256,
    start_mreg,
    temp_files,
)
from helpers import commit_all, git

from mreg import atomic

pytestmark = pytest.mark.slow  # real processes, killed and run again: ~50 s in all

SIGNALS = {"SIGKILL": signal.SIGKILL, "SIGINT": signal.SIGINT}
# Python starts in ~0.3 s and these commands take 0.3-1.5 s here: kills land before, during
# and after the work.
DELAYS = (0.2, 1.2)


@dataclass
class Scene:
    """A repository where the command under test has work to do."""

    root: Path
    versions: dict[str, set[str]]  # path -> sha256 of each bytes it may hold (old and new)
    remote: Path
    known: dict[str, str]  # cache path -> sha256, of every version


def delay(name: str, sig: str, trial: int) -> float:
    return random.Random(f"{name}-{sig}-{trial}").uniform(*DELAYS)


def kill(root: Path, args: tuple[str, ...], seconds: float, sig: int) -> Finished:
    result = kill_after(start_mreg(root, *args), seconds, sig)
    if sig == signal.SIGINT and result.exit_code == 130:
        # Ctrl-C: one line that says what state it left, no traceback.
        assert "Traceback" not in result.stderr, result.stderr
        assert "interrupted" in result.stderr
    return result


def ok(root: Path, *args: str) -> Finished:
    result = run_mreg(root, *args)
    assert result.exit_code == 0, result.stderr
    return result


def assert_whole(scene: Scene) -> None:
    """Each tracked path holds one of its versions' bytes in full, or is absent."""
    for rel, allowed in scene.versions.items():
        path = scene.root / rel
        if path.exists():
            assert sha256(path.read_bytes()) in allowed, f"{rel} is neither old nor new"
    assert_cache_holds_only_good_files(scene.root, scene.known)


def assert_in_sync(root: Path) -> None:
    """After the re-run: nothing left over, every file checked, every artifact in sync.
    (A SIGKILL leaves a temporary file beside what it was writing; the re-run removes it.)"""
    assert temp_files(root) == []
    ok(root, "verify")
    states = json.loads(ok(root, "status", "--json").stdout)
    assert states and all(s["states"] == ["in sync"] for s in states), states


def assert_remote_complete(scene: Scene) -> None:
    data = scene.remote / "data"
    for path in data.rglob("*") if data.exists() else []:
        if path.is_file() and not path.name.startswith("."):
            rel = path.relative_to(scene.remote).as_posix()
            assert sha256(path.read_bytes()) == scene.known[rel], f"partial object {rel}"


@pytest.fixture
def scene(repo: Path, run, remote_dir: Path) -> Scene:  # type: ignore[no-untyped-def]
    """m.safetensors at v1 (tagged m@v0.1.0, pushed), then v2 added and committed (not
    pushed); the work tree holds v2."""
    model = repo / "m.safetensors"
    make_model(model, seed=1, tensors=8, kib=1024)
    v1 = sha256(model.read_bytes())
    assert run("add", "m.safetensors").exit_code == 0
    manifest_v1 = (repo / "m.safetensors.mreg.toml").read_bytes()
    commit_all(repo, "v1")
    assert run("tag", "m", "v0.1.0").exit_code == 0
    assert run("push").exit_code == 0
    make_model(model, seed=2, tensors=8, kib=1024)
    v2 = sha256(model.read_bytes())
    assert run("add", "m.safetensors").exit_code == 0
    manifest_v2 = (repo / "m.safetensors.mreg.toml").read_bytes()
    commit_all(repo, "v2")
    known = recorded_files(repo)
    git(repo, "checkout", "-q", "HEAD~1", "--", "m.safetensors.mreg.toml")
    known |= recorded_files(repo)
    git(repo, "checkout", "-q", "HEAD", "--", "m.safetensors.mreg.toml")
    versions = {
        "m.safetensors": {v1, v2},
        "m.safetensors.mreg.toml": {sha256(manifest_v1), sha256(manifest_v2)},
    }
    return Scene(repo, versions, remote_dir, known)


CASES = [(sig, trial) for sig in SIGNALS for trial in range(2)]
IDS = [f"{sig}-{trial}" for sig, trial in CASES]


@pytest.mark.parametrize(("sig", "trial"), CASES, ids=IDS)
def test_a_killed_add_leaves_the_old_or_the_new_version_and_a_rerun_converges(
    scene: Scene, sig: str, trial: int
):
    make_model(scene.root / "m.safetensors", seed=3, tensors=8, kib=1024)
    v3 = sha256((scene.root / "m.safetensors").read_bytes())

    kill(scene.root, ("add", "m.safetensors"), delay("add", sig, trial), SIGNALS[sig])

    manifest = (scene.root / "m.safetensors.mreg.toml").read_bytes()
    assert sha256(manifest) in scene.versions["m.safetensors.mreg.toml"] or _records(manifest, v3)
    ok(scene.root, "add", "m.safetensors")
    assert _records((scene.root / "m.safetensors.mreg.toml").read_bytes(), v3)
    assert_in_sync(scene.root)


def _records(manifest: bytes, sha: str) -> bool:
    return f'sha256 = "{sha}"' in manifest.decode()


@pytest.mark.parametrize(("sig", "trial"), CASES, ids=IDS)
def test_a_killed_push_leaves_only_whole_files_on_the_remote_and_a_rerun_converges(
    scene: Scene, sig: str, trial: int
):
    kill(scene.root, ("push", "-j", "2"), delay("push", sig, trial), SIGNALS[sig])

    assert_remote_complete(scene)
    ok(scene.root, "push")
    ok(scene.root, "verify", "--remote", "origin")


@pytest.mark.parametrize(("sig", "trial"), CASES, ids=IDS)
def test_a_killed_pull_in_a_fresh_clone_leaves_nothing_half_written_and_a_rerun_converges(
    scene: Scene, sig: str, trial: int, tmp_path: Path
):
    ok(scene.root, "push")
    other = clone(scene.root, tmp_path / "clone")
    cloned = Scene(other, scene.versions, scene.remote, scene.known)

    kill(other, ("pull", "-j", "2"), delay("pull", sig, trial), SIGNALS[sig])

    assert_whole(cloned)
    ok(other, "pull")
    assert (other / "m.safetensors").read_bytes() == (scene.root / "m.safetensors").read_bytes()
    assert_in_sync(other)


@pytest.mark.parametrize(("sig", "trial"), CASES[::2], ids=IDS[::2])
def test_a_killed_fetch_leaves_only_checked_files_in_the_cache(
    scene: Scene, sig: str, trial: int, tmp_path: Path
):
    ok(scene.root, "push")
    other = clone(scene.root, tmp_path / "clone")

    kill(other, ("fetch", "-j", "2"), delay("fetch", sig, trial), SIGNALS[sig])

    assert_cache_holds_only_good_files(other, scene.known)
    ok(other, "fetch")
    ok(other, "verify")


@pytest.mark.parametrize(("sig", "trial"), CASES, ids=IDS)
def test_a_killed_rollback_checkout_leaves_whole_files_and_a_rerun_converges(
    scene: Scene, sig: str, trial: int
):
    kill(scene.root, ("checkout", "m@v0.1.0"), delay("checkout", sig, trial), SIGNALS[sig])

    assert_whole(scene)
    ok(scene.root, "checkout", "m@v0.1.0")
    old = git(scene.root, "show", "m@v0.1.0:m.safetensors.mreg.toml")
    assert (scene.root / "m.safetensors.mreg.toml").read_text() == old
    assert_in_sync(scene.root)


@pytest.mark.parametrize(("sig", "trial"), CASES[::2], ids=IDS[::2])
def test_a_killed_gc_keeps_every_referenced_file(scene: Scene, run, sig: str, trial: int):
    make_model(scene.root / "m.safetensors", seed=4, tensors=8, kib=1024)
    ok(scene.root, "add", "m.safetensors")  # v3, not committed: its data are live (work tree)
    git(scene.root, "checkout", "-q", "--", "m.safetensors.mreg.toml")  # back to v2: v3 unused

    kill(scene.root, ("gc", "--force"), delay("gc", sig, trial), SIGNALS[sig])

    ok(scene.root, "verify")
    ok(scene.root, "gc", "--force")
    assert json.loads(ok(scene.root, "gc", "--json").stdout)["unused"] == []
    ok(scene.root, "checkout", "--force")
    assert_in_sync(scene.root)


@pytest.mark.parametrize(("sig", "trial"), CASES[::2], ids=IDS[::2])
def test_a_killed_tag_leaves_a_whole_tag_or_none_and_a_rerun_converges(
    scene: Scene, sig: str, trial: int
):
    kill(scene.root, ("tag", "m", "v0.2.0"), delay("tag", sig, trial), SIGNALS[sig])

    tags = git(scene.root, "tag", "--list", "m@v0.2.0").split()
    if not tags:
        ok(scene.root, "tag", "m", "v0.2.0")
    head = git(scene.root, "rev-parse", "HEAD").strip()
    assert git(scene.root, "rev-parse", "m@v0.2.0^{commit}").strip() == head
    assert git(scene.root, "cat-file", "-t", "m@v0.2.0").strip() == "tag"
    git(scene.root, "fsck", "--no-dangling")


def kill_when_writing(root: Path, args: tuple[str, ...], pattern: str) -> bool:
    """Run ``mreg ARGS`` and SIGKILL it as soon as a file matching ``pattern`` appears in
    ``root``; whether it was killed with that file there."""
    process = start_mreg(root, *args)
    while process.poll() is None:
        if list(root.glob(pattern)):
            process.kill()
            process.communicate()
            return bool(list(root.glob(pattern)))
    process.communicate()
    return False


@pytest.mark.parametrize("command", ["checkout", "pull"])
def test_a_temporary_file_left_by_a_killed_restore_is_removed_by_the_next_one(
    scene: Scene, command: str
):
    make_model(scene.root / "m.safetensors", seed=5, tensors=16, kib=2048)  # 32 MiB
    ok(scene.root, "add", "m.safetensors")
    (scene.root / "m.safetensors").unlink()
    if not kill_when_writing(scene.root, (command,), ".m.safetensors.*.tmp"):
        pytest.skip("the restore finished before it could be killed")
    ok(scene.root, "status")
    assert temp_files(scene.root) != []  # status writes nothing

    ok(scene.root, command)

    assert temp_files(scene.root) == []
    assert_in_sync(scene.root)


def test_checkout_removes_only_the_temporaries_that_dead_mreg_processes_left(scene: Scene):
    dead = subprocess.Popen(["true"])
    dead.wait()
    ours = f"{atomic._HOST}-{dead.pid}"  # this machine, a process that no longer runs
    leftovers = [
        f".m.safetensors.mreg.toml.mreg-{ours}-k3j_x9a0.tmp",
        f".m.safetensors.mreg-{ours}-x.tmp",
    ]
    kept = [
        f".m.safetensors.mreg.toml.mreg-{atomic._HOST}-{os.getpid()}-k3j_x9a0.tmp",  # alive
        f".m.safetensors.mreg.toml.mreg-0badc0de-{dead.pid}-k3j_x9a0.tmp",  # another machine
        ".m.safetensors.mreg.toml.k3j_x9a0.tmp",  # not named by mreg
        "m.safetensors.k3j_x9a0.tmp",
    ]
    for name in leftovers + kept:
        (scene.root / name).write_text("left by a killed writer")

    ok(scene.root, "checkout")

    assert sorted(p.name for p in scene.root.glob("*.tmp")) == sorted(kept)
