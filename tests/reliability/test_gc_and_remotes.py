"""gc of the cache and of a shared remote loses nothing another ref, work tree or clone may
still use; remotes never carry secrets into a committed file or onto the terminal.

Issue 10, items 3 (remote gc from a clone that has not fetched), 4 (refs/stash, reflogs,
worktrees) and 18 (secrets in remote URLs)."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

from conftest import (
    added,
    commit_all,
    git,
    make_safetensors,
)

# -- helpers -------------------------------------------------------------------------------


def data_files(manifest: Path) -> set[str]:
    """The data files a manifest references (paths relative to the cache or remote root)."""
    return {f["path"] for f in tomllib.loads(manifest.read_text())["lance"]["files"]}


def cached(root: Path, files: set[str]) -> bool:
    return all((root / ".mreg" / "cache" / p).is_file() for p in files)


def model_bytes(tmp_path: Path, seed: int) -> bytes:
    """The bytes of the safetensors model ``make_safetensors`` makes with ``seed``."""
    return make_safetensors(tmp_path / f"expected-{seed}.safetensors", seed=seed).read_bytes()


def ok(result):  # type: ignore[no-untyped-def]
    assert result.exit_code == 0, result.stderr
    return result


def v1_committed_then_v2_added(repo: Path, run) -> tuple[set[str], set[str]]:  # type: ignore[no-untyped-def]
    """``m`` v1 committed, v2 added (manifest changed, not committed); their data files."""
    manifest = added(run, make_safetensors(repo / "m.safetensors", seed=1))
    commit_all(repo, "m v1")
    v1 = data_files(manifest)
    added(run, make_safetensors(repo / "m.safetensors", seed=2))
    v2 = data_files(manifest) - v1
    assert v1 and v2
    return v1, v2


def restored(repo: Path, run) -> bytes:  # type: ignore[no-untyped-def]
    """``m.safetensors`` as ``mreg checkout`` restores it from the cache alone."""
    (repo / "m.safetensors").unlink(missing_ok=True)
    ok(run("checkout", "--force"))
    return (repo / "m.safetensors").read_bytes()


# -- local gc: every ref, reflog, stash entry and work tree counts ---------------------------


def test_gc_keeps_the_data_of_a_stashed_manifest_for_stash_pop(repo, run, tmp_path):
    _, v2 = v1_committed_then_v2_added(repo, run)
    git(repo, "stash")

    ok(run("gc", "--force"))

    assert cached(repo, v2)
    git(repo, "stash", "pop")
    assert restored(repo, run) == model_bytes(tmp_path, 2)


def test_gc_keeps_the_data_of_older_stash_entries(repo, run, tmp_path):
    _, v2 = v1_committed_then_v2_added(repo, run)
    git(repo, "stash")  # stash@{1} after the next one
    added(run, make_safetensors(repo / "m.safetensors", seed=3))
    git(repo, "stash")

    ok(run("gc", "--force"))

    assert cached(repo, v2)
    git(repo, "stash", "drop")
    git(repo, "stash", "pop")
    assert restored(repo, run) == model_bytes(tmp_path, 2)


def test_gc_keeps_the_data_of_a_staged_manifest_changed_again_in_the_work_tree(repo, run, tmp_path):
    _, v2 = v1_committed_then_v2_added(repo, run)
    git(repo, "add", "m.safetensors.mreg.toml")
    added(run, make_safetensors(repo / "m.safetensors", seed=3))

    ok(run("gc", "--force"))

    assert cached(repo, v2)
    git(repo, "checkout", "--", "m.safetensors.mreg.toml")  # back to the staged version
    assert restored(repo, run) == model_bytes(tmp_path, 2)


def test_gc_keeps_the_data_of_a_commit_only_the_reflog_remembers(repo, run, tmp_path):
    _, v2 = v1_committed_then_v2_added(repo, run)
    commit_all(repo, "m v2")
    git(repo, "reset", "--hard", "HEAD~1")  # v2 is now only in the reflog

    ok(run("gc", "--force"))

    assert cached(repo, v2)
    git(repo, "reset", "--hard", "HEAD@{1}")
    assert restored(repo, run) == model_bytes(tmp_path, 2)


def test_gc_keeps_the_data_at_the_head_of_a_linked_worktree(repo, run, tmp_path):
    _, v2 = v1_committed_then_v2_added(repo, run)
    v2_commit = commit_all(repo, "m v2")
    git(repo, "worktree", "add", "-q", "--detach", str(tmp_path / "side"), v2_commit)
    git(repo, "reset", "--hard", "HEAD~1")
    git(repo, "reflog", "expire", "--expire=now", "--all")  # only the worktree's HEAD is left

    ok(run("gc", "--force"))

    assert cached(repo, v2)
    ok(run("checkout", f"m@{v2_commit}"))
    assert (repo / "m.safetensors").read_bytes() == model_bytes(tmp_path, 2)


def test_gc_still_deletes_data_nothing_references(repo, run):
    v1, v2 = v1_committed_then_v2_added(repo, run)
    git(repo, "checkout", "--", "m.safetensors.mreg.toml")  # v2 was never committed nor stashed

    listed = json.loads(ok(run("gc", "--json")).stdout)
    assert set(listed["unused"]) == v2
    ok(run("gc", "--force"))

    assert cached(repo, v1)
    assert not any((repo / ".mreg" / "cache" / p).exists() for p in v2)
