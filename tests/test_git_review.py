"""git speaks mreg: `git diff` / `git log -p` / `git show` describe manifests through the
textconv that `mreg init` and `mreg install-git` set up; the hooks guard pushes and say what a
checkout left stale; `mreg diff --format markdown` is a pull-request comment."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from helpers import (
    added,
    assert_refused,
    commit_all,
    git,
    init_work_tree,
    make_safetensors,
    make_table,
)

FRAGMENT_JSON = '"physical_rows"'  # in every fragment's Lance metadata, never in the summary


def git_out(root: Path, *args: str) -> str:
    """git's output, with this process's environment (PYTHONPATH: this mreg runs the textconv)."""
    done = subprocess.run(
        ["git", "-c", "core.pager=cat", *args], cwd=root, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def two_model_versions(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "net.safetensors", seed=0, layers=3)
    added(run, repo / "net.safetensors")
    commit_all(repo, "net v1")
    make_safetensors(repo / "net.safetensors", seed=1, layers=4)
    added(run, repo / "net.safetensors")


def test_init_writes_the_attributes_line_and_the_textconv_setting(repo):
    assert "*.mreg.toml diff=mreg" in (repo / ".gitattributes").read_text().splitlines()
    command = git(repo, "config", "--get", "diff.mreg.textconv")
    assert "-m mreg diff-textconv" in command and "|| cat" in command


def test_git_diff_shows_changed_tensors_with_shape_dtype_and_no_fragment_json(repo, run):
    two_model_versions(repo, run)
    shown = git_out(repo, "diff")
    lines = shown.splitlines()
    assert "+tensor layers.3.weight [16, 16] float32" in " ".join(lines)
    assert any(line.startswith("-tensor layers.0.weight [16, 16] float32 digest") for line in lines)
    assert any(line.startswith("+tensor layers.0.weight [16, 16] float32 digest") for line in lines)
    assert "-parameters 816 (float32)" in lines and "+parameters 1,088 (float32)" in lines
    assert any(line.startswith("-source sha256 ") for line in lines)
    assert FRAGMENT_JSON not in shown and "[lance]" not in shown


def test_git_log_p_and_git_show_describe_committed_manifests(repo, run):
    two_model_versions(repo, run)
    commit_all(repo, "net v2")
    for args in (("log", "-p", "-1"), ("show", "HEAD")):
        shown = git_out(repo, *args)
        assert "+tensor layers.3.bias [16] float32" in shown
        assert FRAGMENT_JSON not in shown


def test_git_diff_of_a_dataset_shows_rows_columns_and_fragments(repo, run):
    make_table(repo / "t.parquet", rows=100)
    added(run, repo / "t.parquet")
    commit_all(repo, "t v1")
    make_table(repo / "more.parquet", rows=60, start=100)
    assert run("add", "more.parquet", "--name", "t", "--mode", "append").exit_code == 0
    (repo / "more.parquet").unlink()
    lines = git_out(repo, "diff", "--", "t.parquet.mreg.toml").splitlines()
    assert "-rows 100" in lines and "+rows 160" in lines
    assert " column id int64" in lines
    assert "+fragment 1: 60 rows" in lines


def test_a_clone_without_the_textconv_setting_shows_plain_toml(repo, run, tmp_path):
    two_model_versions(repo, run)
    commit_all(repo, "net v2")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    assert (clone / ".gitattributes").exists()  # asks for the driver, which is not configured
    shown = git_out(clone, "show", "HEAD")
    assert FRAGMENT_JSON in shown and "[model]" in shown


def test_a_textconv_whose_mreg_is_gone_falls_back_to_plain_toml(repo, run):
    two_model_versions(repo, run)
    command = git(repo, "config", "--get", "diff.mreg.textconv").strip()
    python = command.split("f() { ", 1)[1].split(" -m mreg", 1)[0]
    git(repo, "config", "diff.mreg.textconv", command.replace(python, "/nonexistent/python"))
    shown = git_out(repo, "diff")
    assert FRAGMENT_JSON in shown and "+" in shown


def test_install_git_is_idempotent_and_keeps_existing_attributes(tmp_path, monkeypatch, run):
    root = init_work_tree(tmp_path / "existing")
    (root / ".gitattributes").write_text("*.png binary")  # no final newline
    monkeypatch.chdir(root)
    assert run("init").exit_code == 0
    for _ in range(2):
        result = run("install-git")
        assert result.exit_code == 0, result.stderr
    assert (root / ".gitattributes").read_text() == "*.png binary\n*.mreg.toml diff=mreg\n"
    assert len(git(root, "config", "--get-all", "diff.mreg.textconv").splitlines()) == 1


def test_textconv_of_a_hostile_file_shows_it_escaped_and_runs_nothing(repo, run, tmp_path):
    hostile = tmp_path / "evil.mreg.toml"
    hostile.write_text('name = "\x1b]8;;http://x\x07"\n[[lance.fragments]]\nid = "x"\n')
    result = run("diff-textconv", str(hostile))
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[0].startswith("# not a valid mreg manifest")
    assert "\x1b" not in result.stdout and "\\x1b" in result.stdout


# -- hooks --------------------------------------------------------------------------------


@pytest.fixture
def pushed_setup(repo, run, remote_dir, tmp_path):  # type: ignore[no-untyped-def]
    """A repo with a committed model (data not pushed), hooks installed, a bare git remote."""
    bare = tmp_path / "bare.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(repo, "remote", "add", "origin", str(bare))
    make_safetensors(repo / "net.safetensors")
    added(run, repo / "net.safetensors")
    commit_all(repo, "net")
    return bare


def git_push(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "push", "-q", "origin", "main"], cwd=root, capture_output=True, text=True
    )


def test_pre_push_blocks_a_push_whose_data_is_not_on_the_remote_until_mreg_push(
    repo, run, pushed_setup
):
    assert run("install-git", "--hooks").exit_code == 0
    refused = git_push(repo)
    assert refused.returncode != 0
    assert "push refused" in refused.stderr and "net (1 file(s))" in refused.stderr
    assert "mreg push" in refused.stderr
    assert git(pushed_setup, "branch", "--list").strip() == ""  # nothing reached the remote

    assert run("push").exit_code == 0
    done = git_push(repo)
    assert done.returncode == 0, done.stderr
    assert git(pushed_setup, "rev-parse", "main") == git(repo, "rev-parse", "HEAD")


def test_an_existing_hook_is_kept_runs_first_and_still_gets_the_pushed_refs(
    repo, run, pushed_setup, tmp_path
):
    hooks = repo / ".git" / "hooks"
    log = tmp_path / "hook.log"
    (hooks / "pre-push").write_text(f'#!/bin/sh\necho "$1" >> {log}\ncat >> {log}\n')
    (hooks / "pre-push").chmod(0o755)
    result = run("install-git", "--hooks")
    assert result.exit_code == 0 and "pre-push.pre-mreg" in result.stdout
    assert run("install-git", "--hooks").exit_code == 0  # twice: still chained once
    assert run("push").exit_code == 0
    assert git_push(repo).returncode == 0
    logged = log.read_text().splitlines()
    assert logged[0] == "origin"
    assert logged[1].startswith("refs/heads/main ") and len(logged) == 2


def test_an_existing_hook_that_fails_still_stops_the_push(repo, run, pushed_setup):
    hook = repo / ".git" / "hooks" / "pre-push"
    hook.write_text("#!/bin/sh\necho 'team policy says no' >&2\nexit 3\n")
    hook.chmod(0o755)
    assert run("install-git", "--hooks").exit_code == 0
    assert run("push").exit_code == 0
    refused = git_push(repo)
    assert refused.returncode != 0 and "team policy says no" in refused.stderr


def test_post_checkout_names_stale_artifacts_and_auto_checkout_restores_them(repo, run):
    make_safetensors(repo / "net.safetensors", seed=0)
    added(run, repo / "net.safetensors")
    commit_all(repo, "v1")
    first = make_safetensors(repo / "net.safetensors", seed=0).read_bytes()
    make_safetensors(repo / "net.safetensors", seed=1)
    added(run, repo / "net.safetensors")
    commit_all(repo, "v2")
    assert run("install-git", "--hooks").exit_code == 0
    moved = git_checkout(repo, "HEAD~1")
    assert moved.returncode == 0
    assert "out of date: net" in moved.stderr and "mreg pull" in moved.stderr

    assert run("install-git", "--hooks", "--auto-checkout").exit_code == 0
    assert git_checkout(repo, "main").stderr == ""  # the work tree holds main's version
    again = git_checkout(repo, "HEAD~1")
    assert again.returncode == 0 and "restored 1 artifact(s)" in again.stderr
    assert (repo / "net.safetensors").read_bytes() == first


def git_checkout(root: Path, rev: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "checkout", "-q", rev], cwd=root, capture_output=True, text=True)


def test_pre_commit_framework_manifest_publishes_the_hooks():
    text = (Path(__file__).resolve().parent.parent / ".pre-commit-hooks.yaml").read_text()
    for hook in ("mreg-pre-push", "mreg-post-checkout", "mreg-post-merge"):
        assert f"id: {hook}" in text
    assert "entry: mreg hook pre-push" in text


def test_pre_push_under_pre_commit_reads_the_pushed_ref_from_its_environment(
    repo, run, pushed_setup, monkeypatch
):
    monkeypatch.setenv("PRE_COMMIT_TO_REF", git(repo, "rev-parse", "HEAD").strip())
    assert_refused(run("hook", "pre-push", "origin", str(pushed_setup)), "push refused", "net")
    assert run("push").exit_code == 0
    assert run("hook", "pre-push", "origin", str(pushed_setup)).exit_code == 0


def test_hooks_do_nothing_in_a_clone_without_mreg(tmp_path, monkeypatch, run):
    root = init_work_tree(tmp_path / "plain")
    monkeypatch.chdir(root)
    assert run("hook", "post-checkout", "0", "0", "1").exit_code == 0


# -- mreg diff --format markdown ---------------------------------------------------------


def test_markdown_diff_of_registered_versions_has_a_table_with_deltas_and_folded_details(repo, run):
    for seed, (layers, accuracy) in enumerate(((3, "0.9"), (4, "0.925"))):
        weights = make_safetensors(repo / f"w{seed}.safetensors", seed=seed, layers=layers)
        result = run("register", weights.name, "--name", "net", "--metric", f"accuracy={accuracy}")
        assert result.exit_code == 0, result.stderr
    result = run("diff", "net@v0.1.0", "net@v0.1.1", "--format", "markdown")
    assert result.exit_code == 0, result.stderr
    text = result.stdout
    assert text.startswith("### mreg: 1 artifact(s) changed, `net@v0.1.0` → `net@v0.1.1`")
    assert "#### ~ `net` (model, changed)" in text
    assert "| parameters | 816 | 1,088 | +272 |" in text
    # every tensor of seed 1 differs from seed 0: 8 of 8, all parameters
    assert "| tensors changed | | 8 of 8 | 100.0% of parameters |" in text
    assert "| metric `accuracy` | 0.9 | 0.925 | +0.025 |" in text
    assert "<details><summary>" in text and "+ tensor layers.3.weight [16, 16] float32" in text


def test_markdown_diff_of_a_dataset_shows_the_row_delta_and_keeps_clone_text_inert(repo, run):
    make_table(repo / "t.parquet", rows=100)
    added(run, repo / "t.parquet", "--meta", "note=plain")
    commit_all(repo, "t v1")
    make_table(repo / "more.parquet", rows=28, start=100)
    assert run("add", "more.parquet", "--name", "t", "--mode", "append").exit_code == 0
    assert run("add", "t.parquet", "--meta", "note=```<img src=x>|").exit_code == 0
    text = run("diff", "--format", "markdown").stdout
    assert "| rows | 100 | 128 | +28 |" in text
    body = text.split("```\n", 1)[1].rsplit("\n```", 1)[0]
    assert "`" not in body and "'''<img src=x>|" in body


def test_json_format_stays_and_an_unknown_format_is_refused(repo, run):
    two_model_versions(repo, run)
    as_json = run("diff", "--format", "json")
    assert as_json.exit_code == 0 and '"tensors_changed": 8' in as_json.stdout
    assert run("diff", "--json").stdout == as_json.stdout
    assert_refused(run("diff", "--format", "html"), "unknown format 'html'")
