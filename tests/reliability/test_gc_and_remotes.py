"""gc of the cache and of a shared remote loses nothing another ref, work tree or clone may
still use; remotes never carry secrets into a committed file or onto the terminal.

Issue 10, items 3 (remote gc from a clone that has not fetched), 4 (refs/stash, reflogs,
worktrees) and 18 (secrets in remote URLs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import (
    Result,
    added,
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    make_table,
    manifest_path,
    snapshot,
)

from mreg import Repo

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


def test_gc_removes_what_a_server_rebuilt_for_versions_nothing_keeps(repo, run):  # type: ignore[no-untyped-def]
    from mreg.server.operations import Served

    served = Served(repo)
    v1 = data_files(added(run, make_safetensors(repo / "m.safetensors", seed=1)))
    old = served.download("m").path  # v1, never committed: replaced by v2 below
    added(run, make_safetensors(repo / "m.safetensors", seed=2))
    new = served.download("m").path
    assert old != new and old.is_file()

    listed = ok(run("gc"))
    assert f"served/{old.name}" in listed.stdout and f"served/{new.name}" not in listed.stdout
    ok(run("gc", "--force"))

    assert not old.exists() and not old.with_name(f"{old.name}.sha256").exists()
    assert new.is_file() and served.download("m").path == new
    assert not cached(repo, v1)  # the data files of v1 went as before


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


# -- remote gc: a clone that has not fetched loses nothing of its teammates' -----------------


@dataclass
class Team:
    """Clone ``a`` (the ``repo`` fixture) and teammate ``b`` share a bare git remote ``bare``
    and the mreg remote ``remote``; ``m`` v1 is committed, pushed and in both."""

    a: Path
    b: Path
    bare: Path
    remote: str
    v1: set[str]


@pytest.fixture(params=["local", "s3"])
def team(request, repo, run, tmp_path, monkeypatch) -> Team:  # type: ignore[no-untyped-def]
    remote = "origin" if request.param == "local" else "s3"
    request.getfixturevalue("remote_dir" if request.param == "local" else "s3_remote")
    v1 = data_files(added(run, make_safetensors(repo / "m.safetensors", seed=1)))
    commit_all(repo, "m v1")
    ok(run("push"))
    bare = tmp_path / "shared.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    git(repo, "push", "-q", "origin", "main")
    teammate = tmp_path / "teammate"
    git(tmp_path, "clone", "-q", str(bare), str(teammate))
    return Team(repo, teammate, bare, remote, v1)


def remote_files(team: Team) -> set[str]:
    return set(Repo(team.a).store(team.remote).list_files())


def teammate_pushes_v2(team: Team, run, monkeypatch, publish: str | None) -> set[str]:  # type: ignore[no-untyped-def]
    """In clone ``b``: ``m`` v2 on branch ``feature``, committed and its data pushed; then
    ``git push`` of it to ``publish`` (a ref of the bare remote; None: not pushed to git)."""
    monkeypatch.chdir(team.b)
    git(team.b, "checkout", "-q", "-b", "feature")
    manifest = added(run, make_safetensors(team.b / "m.safetensors", seed=2))
    commit_all(team.b, "m v2")
    ok(run("push"))
    if publish:
        git(team.b, "push", "-q", "origin", f"HEAD:{publish}")
    monkeypatch.chdir(team.a)
    return data_files(manifest) - team.v1


def teammate_pulls_again(team: Team, run, monkeypatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Clone ``b`` with an empty cache pulls v2 from the remote, byte for byte."""
    monkeypatch.chdir(team.b)
    shutil.rmtree(team.b / ".mreg" / "cache")
    (team.b / "m.safetensors").unlink()
    ok(run("pull"))
    assert (team.b / "m.safetensors").read_bytes() == model_bytes(tmp_path, 2)
    monkeypatch.chdir(team.a)


def refs(root: Path) -> str:
    return git(root, "for-each-ref")


@pytest.mark.parametrize(
    "publish", ["refs/heads/feature", "refs/tags/m@v2.0.0", "refs/pull/7/head"]
)
def test_remote_gc_from_a_clone_that_has_not_fetched_keeps_a_teammates_pushed_ref(
    team, run, monkeypatch, tmp_path, publish
):
    v2 = teammate_pushes_v2(team, run, monkeypatch, publish)
    local_refs = refs(team.a)

    # Grace period waived: only the fetch of the git remote's refs can save v2.
    result = ok(run("gc", "-r", team.remote, "--force", "--older-than", "0s"))

    assert "0 file(s)" in result.stdout
    assert v2 | team.v1 <= remote_files(team)
    assert refs(team.a) == local_refs  # counted, without moving this clone's refs
    teammate_pulls_again(team, run, monkeypatch, tmp_path)


def test_remote_gc_keeps_data_pushed_before_its_git_push_for_the_grace_period(
    team, run, monkeypatch, tmp_path
):
    v2 = teammate_pushes_v2(team, run, monkeypatch, publish=None)  # `git push` still to come

    result = ok(run("gc", "-r", team.remote, "--force", "--json"))

    report = json.loads(result.stdout)
    assert report["unused"] == [] and set(report["too_young"]) == v2
    assert v2 <= remote_files(team)
    teammate_pulls_again(team, run, monkeypatch, tmp_path)


@pytest.mark.parametrize("team", ["local"], indirect=True)
def test_remote_gc_deletes_unreferenced_objects_older_than_the_grace_period(team, run, remote_dir):
    scratch = data_files(added(run, make_table(team.a / "scratch.parquet")))
    ok(run("push", "scratch"))
    manifest_path(team.a / "scratch.parquet").unlink()  # never committed: garbage
    week_ago = time.time() - 8 * 86400
    for path in scratch:
        os.utime(remote_dir / path, (week_ago, week_ago))
    # Referenced data as old as that stay.
    for path in team.v1:
        os.utime(remote_dir / path, (week_ago, week_ago))

    result = ok(run("gc", "-r", team.remote, "--force"))

    assert f"{len(scratch)} file(s)" in result.stdout
    assert remote_files(team) == team.v1


def test_remote_gc_is_refused_in_one_line_when_a_git_remote_cannot_be_reached(
    team, run, monkeypatch, tmp_path
):
    v2 = teammate_pushes_v2(team, run, monkeypatch, "refs/heads/feature")
    shutil.move(team.bare, tmp_path / "gone.git")
    before = remote_files(team)

    assert_refused(
        run("gc", "-r", team.remote, "--force", "--older-than", "0s"), "git remote 'origin'",
        "--no-fetch",
    )  # fmt: skip

    assert remote_files(team) == before
    # The user may go on without the fetch; v2 then keeps the grace period only.
    report = json.loads(ok(run("gc", "-r", team.remote, "--no-fetch", "--json")).stdout)
    assert report["unused"] == [] and set(report["too_young"]) == v2


def test_remote_gc_keeps_the_work_in_progress_of_a_linked_worktree(
    team, run, monkeypatch, tmp_path
):
    side = tmp_path / "side"
    git(team.a, "worktree", "add", "-q", "-b", "side", str(side))
    monkeypatch.chdir(side)
    ok(run("init"))
    v2 = data_files(added(run, make_safetensors(side / "m.safetensors", seed=2))) - team.v1
    ok(run("push"))  # pushed, never committed
    monkeypatch.chdir(team.a)

    ok(run("gc", "-r", team.remote, "--force", "--older-than", "0s"))

    assert v2 <= remote_files(team)


@pytest.mark.parametrize("team", ["local"], indirect=True)
@pytest.mark.parametrize("duration", ["7", "soon", "-1d", "1y"])
def test_a_bad_grace_period_is_refused_before_anything_is_listed(team, run, duration):
    before = remote_files(team)

    assert_refused(run("gc", "-r", team.remote, "--force", "--older-than", duration), "duration")

    assert remote_files(team) == before


# -- secrets never enter the committed config, nor the terminal ------------------------------

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRET"

SECRET_URLS = {
    "key and secret in an s3 URL": ("s3://AKIAEXAMPLE:{s}@bucket/models", None),
    "a token alone in an s3 URL": ("s3://{s}@bucket/models", None),
    "key and secret in the endpoint": (
        "s3://bucket/models",
        "http://AKIAEXAMPLE:{s}@127.0.0.1:9000",
    ),
    "user and password in a file URL": ("file://user:{s}@host/srv/models", None),
}


def secret_free(*texts: str) -> bool:
    return all(SECRET not in text for text in texts)


@pytest.mark.parametrize("url, endpoint", SECRET_URLS.values(), ids=SECRET_URLS.keys())
def test_remote_add_refuses_credentials_in_a_url_and_writes_nothing(repo, run, url, endpoint):
    before = snapshot(repo)
    args = ["--endpoint-url", endpoint.format(s=SECRET)] if endpoint else []

    result = run("remote", "add", "team", url.format(s=SECRET), *args)

    assert_refused(result, "credentials", "--access-key-id", "--secret-access-key")
    assert secret_free(result.stdout, result.stderr)
    assert snapshot(repo) == before


def cloned_config_with_a_secret(repo: Path, url: str, endpoint: str | None) -> None:
    """What a cloned repository may commit: a remote whose URL holds a key."""
    lines = ["[core]", 'remote = "team"', "", "[remote.team]", f'url = "{url.format(s=SECRET)}"']
    if endpoint:
        lines.append(f'endpoint_url = "{endpoint.format(s=SECRET)}"')
    (repo / ".mreg" / "config.toml").write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("url, endpoint", SECRET_URLS.values(), ids=SECRET_URLS.keys())
def test_remote_list_masks_a_secret_in_a_committed_url(repo, run, url, endpoint):
    cloned_config_with_a_secret(repo, url, endpoint)

    listed, as_json = ok(run("remote", "list")), ok(run("remote", "list", "--json"))

    assert secret_free(listed.stdout, listed.stderr, as_json.stdout, as_json.stderr)
    assert "team" in listed.stdout and "***@" in listed.stdout
    assert json.loads(as_json.stdout)[0]["name"] == "team"


@pytest.mark.parametrize("command", [["push"], ["status", "-r", "team"], ["gc", "-r", "team"]])
def test_a_committed_url_with_a_secret_is_refused_when_used(repo, run, command):
    added(run, make_safetensors(repo / "m.safetensors"))
    cloned_config_with_a_secret(repo, *SECRET_URLS["key and secret in the endpoint"])
    before = snapshot(repo)

    result = run(*command)

    assert_refused(result, "remote 'team'", "credentials")
    assert secret_free(result.stdout, result.stderr)
    assert snapshot(repo) == before


@pytest.mark.parametrize("source", ["config.local.toml", "environment"])
def test_no_message_or_listing_prints_a_secret_key(
    repo, run, seaweed, s3_bucket, monkeypatch, source
):
    keys = ["--access-key-id", "minioadmin", "--secret-access-key", SECRET]
    if source == "environment":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "minioadmin")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
        keys = []
    url = f"s3://{s3_bucket}/models"
    added_remote = ok(
        run("remote", "add", "s3", url, "--default", "--endpoint-url", seaweed.endpoint, *keys)
    )
    added(run, make_safetensors(repo / "m.safetensors"))

    outputs = [added_remote, run("remote", "list"), run("remote", "list", "--json")]
    outputs += [run("push"), run("status", "-r", "s3"), run("gc", "-r", "s3", "--no-fetch")]

    assert outputs[3].exit_code != 0 and "rejected the credentials" in outputs[3].stderr
    assert secret_free(*(o.stdout + o.stderr for o in outputs))
    assert SECRET not in (repo / ".mreg" / "config.toml").read_text()


# -- concurrent commands on one shared remote --------------------------------------------------


def start(cwd: Path, *args: str) -> subprocess.Popen[str]:
    """``mreg ARGS`` as its own process in ``cwd``, as a user or a CI job starts it."""
    script = shutil.which("mreg")
    assert script is not None, "the mreg console script is not installed"
    return subprocess.Popen(
        [script, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def finished(process: subprocess.Popen[str]) -> Result:
    out, err = process.communicate(timeout=300)
    return Result(process.returncode, out, err)


def clone_with_the_cache_of(team: Team, name: str) -> Path:
    """Another clone of ``a`` holding the same commits and the same cached data."""
    clone = team.a.parent / name
    git(team.a.parent, "clone", "-q", str(team.a), str(clone))
    shutil.copytree(team.a / ".mreg" / "cache", clone / ".mreg" / "cache")
    return clone


def test_two_clones_pushing_the_same_version_at_once_both_succeed(team, run, monkeypatch, tmp_path):
    v2 = data_files(added(run, make_safetensors(team.a / "m.safetensors", seed=2))) - team.v1
    commit_all(team.a, "m v2")
    other = clone_with_the_cache_of(team, "ci-job")

    results = [finished(p) for p in [start(team.a, "push"), start(other, "push")]]

    assert [r.exit_code for r in results] == [0, 0], [r.stderr for r in results]
    assert v2 <= remote_files(team)
    for clone in (team.a, other):
        monkeypatch.chdir(clone)
        assert "pushed 0 file(s)" in ok(run("push")).stdout  # a re-run converges
        ok(run("verify", "-r", team.remote))
    fresh = tmp_path / "fresh"
    git(tmp_path, "clone", "-q", str(team.a), str(fresh))
    monkeypatch.chdir(fresh)
    ok(run("pull"))
    assert (fresh / "m.safetensors").read_bytes() == model_bytes(tmp_path, 2)


@pytest.mark.parametrize(
    "published, older_than",
    [(False, "7d"), (True, "0s")],
    ids=["data pushed before the git push, in the grace period", "git push first, no grace"],
)
def test_a_push_racing_a_remote_gc_loses_nothing_and_a_rerun_converges(
    team, run, monkeypatch, tmp_path, published, older_than
):
    monkeypatch.chdir(team.b)
    git(team.b, "checkout", "-q", "-b", "feature")
    manifest = added(run, make_table(team.b / "t.parquet", rows=20_000))
    commit_all(team.b, "t")
    if published:
        git(team.b, "push", "-q", "origin", "feature")
    monkeypatch.chdir(team.a)
    garbage = data_files(added(run, make_table(team.a / "scratch.parquet")))
    ok(run("push", "scratch"))
    manifest_path(team.a / "scratch.parquet").unlink()  # never committed: garbage

    push = start(team.b, "push", "t")
    gc = start(team.a, "gc", "-r", team.remote, "--force", "--older-than", older_than)
    pushed, collected = finished(push), finished(gc)

    assert pushed.exit_code == 0, pushed.stderr
    assert collected.exit_code == 0, collected.stderr
    assert data_files(manifest) | team.v1 <= remote_files(team)
    assert bool(garbage & remote_files(team)) == (older_than != "0s")  # gc did its work
    monkeypatch.chdir(team.b)
    assert "pushed 0 file(s)" in ok(run("push", "t")).stdout  # a re-run converges
    ok(run("verify", "t", "-r", team.remote))


def test_gc_help_says_which_refs_keep_data_and_what_a_remote_gc_cannot_know(run):
    result = ok(run("gc", "--help"))

    text = " ".join(result.stdout.split())
    for words in ["worktree", "index", "refs/stash", "refs/notes", "reflog", "remote-tracking"]:
        assert words in text
    assert "--older-than" in text and "never pushed to a git remote" in text
