"""``mreg move``: an artifact and its manifest move together, .gitignore follows, git has the
move staged, and ``mreg log`` follows the artifact's history across moves and format changes."""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

import pytest
from helpers import (
    added,
    assert_refused,
    commit_all,
    git,
    make_pth,
    make_safetensors,
    snapshot,
)


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def ignored(path: Path) -> list[str]:
    gitignore = path.parent / ".gitignore"
    return gitignore.read_text().splitlines() if gitignore.exists() else []


def staged(repo: Path) -> set[str]:
    return set(git(repo, "diff", "--cached", "--name-status", "--no-renames").splitlines())


def test_a_moved_file_takes_its_manifest_and_gitignore_line_along_and_git_has_it_staged(
    repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "net.safetensors")
    digest = sha(repo / "net.safetensors")
    added(run, repo / "net.safetensors")
    commit_all(repo, "net")
    (repo / "models").mkdir()

    result = run("move", "net.safetensors", "models/best.safetensors")

    assert result.exit_code == 0, result.stderr
    new = repo / "models" / "best.safetensors"
    assert sha(new) == digest
    assert not (repo / "net.safetensors").exists()
    assert not (repo / "net.safetensors.mreg.toml").exists()
    manifest = tomllib.loads((repo / "models" / "best.safetensors.mreg.toml").read_text())
    assert (manifest["name"], manifest["path"]) == ("net", "best.safetensors")
    assert "/net.safetensors" not in ignored(repo / "net.safetensors")
    assert ignored(new) == ["/best.safetensors"]
    assert staged(repo) == {
        "D\tnet.safetensors.mreg.toml",
        "A\tmodels/best.safetensors.mreg.toml",
        "D\t.gitignore",
        "A\tmodels/.gitignore",
    }
    status = git(repo, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert "R  net.safetensors.mreg.toml -> models/best.safetensors.mreg.toml" in status
    assert all(line[1] == " " for line in status), status  # all staged, nothing left over
    status_ = run("status")
    assert status_.exit_code == 0
    assert "modified" not in status_.stdout


def test_a_file_moved_into_a_folder_keeps_its_name_and_other_gitignore_lines_stay(
    repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    (repo / ".gitignore").write_text("*.log\n")
    make_safetensors(repo / "net.safetensors")
    added(run, repo / "net.safetensors")
    (repo / "models").mkdir()

    assert run("move", "net.safetensors", "models").exit_code == 0

    assert (repo / "models" / "net.safetensors").is_file()
    assert (repo / "models" / "net.safetensors.mreg.toml").is_file()
    assert ignored(repo / ".gitignore") == ["*.log"]
    assert ignored(repo / "models" / "net.safetensors") == ["/net.safetensors"]


def test_a_folder_artifact_moves_whole_and_checks_out_at_its_new_place(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    folder = repo / "assets"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.bin").write_bytes(b"a" * 1000)
    (folder / "sub" / "b.bin").write_bytes(b"b" * 2000)
    added(run, folder)
    before = {p.relative_to(folder).as_posix(): sha(p) for p in folder.rglob("*") if p.is_file()}

    assert run("move", "assets", "data/assets2").exit_code == 0

    moved = repo / "data" / "assets2"
    after = {p.relative_to(moved).as_posix(): sha(p) for p in moved.rglob("*") if p.is_file()}
    assert after == before
    assert not folder.exists()
    assert ignored(moved) == ["/assets2"]
    assert "/assets" not in ignored(folder)
    (moved / "a.bin").unlink()
    assert run("checkout", "--force", "data/assets2").exit_code == 0
    assert sha(moved / "a.bin") == before["a.bin"]


def test_log_follows_an_artifact_across_a_move(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "net.safetensors", seed=1)
    added(run, repo / "net.safetensors")
    first = commit_all(repo, "first")
    assert run("move", "net.safetensors", "best.safetensors").exit_code == 0
    moved = commit_all(repo, "moved")
    make_safetensors(repo / "best.safetensors", seed=2)
    added(run, repo / "best.safetensors")
    third = commit_all(repo, "retrained")

    result = run("log", "net", "--json")

    assert result.exit_code == 0, result.stderr
    assert [e["commit"] for e in json.loads(result.stdout)] == [third, moved, first]


def test_a_registered_model_whose_format_changes_keeps_its_whole_history(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    commits = []
    for version, seed in (("v1.0.0", 1), ("v1.1.0", 2)):
        make_pth(repo / "net.pth", seed=seed)
        added(run, repo / "net.pth", "--name", "net")
        commits.append(commit_all(repo, f"pth {version}"))
        assert run("tag", "net", version).exit_code == 0
    git(repo, "rm", "-q", "--cached", "net.pth.mreg.toml")
    (repo / "net.pth.mreg.toml").unlink()
    for version, seed in (("v2.0.0", 3), ("v2.1.0", 4)):
        make_safetensors(repo / "net.safetensors", seed=seed)
        added(run, repo / "net.safetensors", "--name", "net")
        commits.append(commit_all(repo, f"safetensors {version}"))
        assert run("tag", "net", version).exit_code == 0

    result = run("log", "net", "--json")

    assert result.exit_code == 0, result.stderr
    entries = json.loads(result.stdout)
    assert [e["commit"] for e in entries] == commits[::-1]
    assert [e["tags"] for e in entries] == [
        ["net@v2.1.0"],
        ["net@v2.0.0"],
        ["net@v1.1.0"],
        ["net@v1.0.0"],
    ]
    models = run("models", "--json")
    assert models.exit_code == 0, models.stderr
    [net] = [m for m in json.loads(models.stdout) if m["name"] == "net"]
    assert net["versions"] == ["v1.0.0", "v1.1.0", "v2.0.0", "v2.1.0"]


@pytest.mark.parametrize(
    ("old", "new", "words"),
    [
        ("missing.safetensors", "other.safetensors", ["missing.safetensors", "not a tracked"]),
        ("net.safetensors", "taken.safetensors", ["taken.safetensors", "exists"]),
        ("net.safetensors", "../outside.safetensors", ["outside the repository"]),
        ("net.safetensors", "net.safetensors", ["same"]),
    ],
)
def test_a_move_that_cannot_be_done_says_why_in_one_line_and_changes_nothing(
    repo: Path, run, old: str, new: str, words: list[str]
) -> None:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "net.safetensors")
    added(run, repo / "net.safetensors")
    (repo / "taken.safetensors").write_bytes(b"someone else's")
    commit_all(repo, "net")
    before, outside = snapshot(repo), snapshot(repo.parent)
    index = git(repo, "ls-files", "--stage")

    assert_refused(run("move", old, new), *words)

    assert snapshot(repo) == before
    assert snapshot(repo.parent) == outside
    assert git(repo, "ls-files", "--stage") == index
