"""Concurrent commands, as real processes: two pushes of one repo, pulls in two clones of one
remote, adds beside a running status. The repository lock serialises writers (or one says in a
line that another command holds it); state.json, the cache and the remote stay whole."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from fault_tools import (
    Finished,
    assert_cache_holds_only_good_files,
    clone,
    make_model,
    recorded_files,
    run_mreg,
    sha256,
    start_mreg,
)
from helpers import assert_one_line_error, commit_all


def together(*commands: tuple[Path, tuple[str, ...]]) -> list[Finished]:
    """Start every command at once; wait for all."""
    processes = [start_mreg(cwd, *args) for cwd, args in commands]
    results = []
    for process in processes:
        out, err = process.communicate(timeout=180)
        results.append(Finished(process.returncode, out, err))
    return results


def each_succeeded_or_waited_out(results: list[Finished]) -> None:
    """Exit 0, or the one-line lock message (a writer that waited longer than it may)."""
    for result in results:
        if result.exit_code != 0:
            assert_one_line_error(result.stderr, "another mreg command")
    assert any(r.exit_code == 0 for r in results)


def state_is_whole(root: Path) -> None:
    state = root / ".mreg" / "state.json"
    if state.exists():
        json.loads(state.read_text())


def in_sync(root: Path) -> None:
    status = run_mreg(root, "status", "--json")
    assert status.exit_code == 0, status.stderr
    assert all(s["states"] == ["in sync"] for s in json.loads(status.stdout))
    assert run_mreg(root, "verify").exit_code == 0


@pytest.fixture
def models(repo: Path, run, remote_dir: Path) -> dict[str, bytes]:  # type: ignore[no-untyped-def]
    """Three models of 4 MiB, added and committed, not pushed."""
    for i in range(3):
        make_model(repo / f"m{i}.safetensors", seed=i, tensors=4, kib=1024)
        assert run("add", f"m{i}.safetensors").exit_code == 0
    commit_all(repo, "models")
    return {f"m{i}.safetensors": (repo / f"m{i}.safetensors").read_bytes() for i in range(3)}


def test_two_pushes_of_one_repository_at_once_leave_the_remote_whole(repo, models, remote_dir):
    results = together((repo, ("push", "-j", "2")), (repo, ("push", "-j", "2")))

    each_succeeded_or_waited_out(results)
    known = recorded_files(repo)
    stored = {
        p.relative_to(remote_dir).as_posix(): sha256(p.read_bytes())
        for p in (remote_dir / "data").rglob("*")
        if p.is_file() and not p.name.startswith(".")
    }
    assert stored == known
    assert run_mreg(repo, "verify", "--remote", "origin").exit_code == 0


def test_two_clones_pull_from_one_s3_remote_at_once(repo, run, s3_remote, tmp_path):
    make_model(repo / "m.safetensors", tensors=8, kib=1024)
    assert run("add", "m.safetensors").exit_code == 0
    commit_all(repo, "model")
    assert run("push").exit_code == 0
    first, second = clone(repo, tmp_path / "a"), clone(repo, tmp_path / "b")

    results = together((first, ("pull",)), (second, ("pull",)))

    assert [r.exit_code for r in results] == [0, 0], [r.stderr for r in results]
    for other in (first, second):
        assert (other / "m.safetensors").read_bytes() == (repo / "m.safetensors").read_bytes()
        in_sync(other)


def test_two_pulls_in_one_clone_at_once_are_serialised(repo, models, tmp_path, run):
    assert run("push").exit_code == 0
    other = clone(repo, tmp_path / "clone")

    results = together((other, ("pull", "-j", "2")), (other, ("pull", "-j", "2")))

    each_succeeded_or_waited_out(results)
    assert_cache_holds_only_good_files(other, recorded_files(other))
    for name, data in models.items():
        assert (other / name).read_bytes() == data
    state_is_whole(other)
    in_sync(other)


def test_adds_while_status_runs_leave_state_and_manifests_whole(repo, run, remote_dir):
    for i in range(3):
        make_model(repo / f"n{i}.safetensors", seed=10 + i, tensors=4, kib=1024)
    commands = [(repo, ("add", f"n{i}.safetensors")) for i in range(3)]
    commands += [(repo, ("status",)) for _ in range(3)]

    results = together(*commands)

    each_succeeded_or_waited_out(results[:3])
    for result in results[3:]:
        assert result.exit_code == 0, result.stderr
    state_is_whole(repo)
    for i, result in enumerate(results[:3]):
        if result.exit_code != 0:
            assert run("add", f"n{i}.safetensors").exit_code == 0
    in_sync(repo)


def test_gc_beside_an_add_never_deletes_what_the_add_just_cached(repo, run, remote_dir):
    make_model(repo / "m.safetensors", seed=1, tensors=8, kib=1024)

    results = together((repo, ("add", "m.safetensors")), (repo, ("gc", "--force")))

    each_succeeded_or_waited_out(results)
    if results[0].exit_code != 0:
        assert run("add", "m.safetensors").exit_code == 0
    in_sync(repo)


def test_two_clones_push_the_same_files_to_one_remote_at_once(
    repo, models, remote_dir, tmp_path, run
):
    other = tmp_path / "copy"
    shutil.copytree(repo, other)  # the same commits and cache: both push every file

    results = together((repo, ("push", "-j", "4")), (other, ("push", "-j", "4")))

    assert [r.exit_code for r in results] == [0, 0], [r.stderr for r in results]
    assert run_mreg(repo, "verify", "--remote", "origin").exit_code == 0
