"""Checkout and pull never destroy work mreg does not hold, never leave its files behind for git
to pick up, and never trust cache bytes this process did not hash."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from helpers import (
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    make_table,
    snapshot,
)

import mreg
from mreg.atomic import PendingFile
from mreg.errors import IntegrityError

KINDS = ["model-file", "dataset-file", "dataset-folder"]
ARTIFACT = {
    "model-file": "m.safetensors",
    "model-packed": "m.safetensors",
    "dataset-file": "t.parquet",
    "dataset-folder": "parts",
}


def write_version(root: Path, kind: str, version: int) -> Path:
    """Version ``version`` of the artifact of ``kind``, written in place."""
    path = root / ARTIFACT[kind]
    if kind == "model-file":  # a 1 MiB weight: Lance keeps it in a blob file of its own
        return make_safetensors(path, seed=version, layers=1, width=512)
    if kind == "model-packed":  # three of them: Lance packs them into one blob file
        return make_safetensors(path, seed=version, layers=3, width=512)
    if kind == "dataset-file":  # no row in common: a re-add reuses the fragments of equal rows
        return make_table(path, rows=10 * version, start=1000 * (version - 1))
    path.mkdir(exist_ok=True)
    for part in range(2):
        make_table(path / f"part-{part}.parquet", rows=5 * version, start=100 * part)
    return path


def edit(path: Path) -> None:
    """A change the user makes and never adds."""
    if path.is_dir():
        make_table(path / "part-0.parquet", rows=3, start=7000)
    elif path.suffix == ".safetensors":
        make_safetensors(path, seed=99)
    else:
        make_table(path, rows=3, start=7000)


def digest(path: Path) -> str:
    """sha256 of a file, or of every (name, bytes) pair of a folder."""
    if path.is_file():
        return hashlib.sha256(path.read_bytes()).hexdigest()
    lines = [f"{p.relative_to(path)}:{digest(p)}" for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def statuses(run) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    result = run("status", "--json")
    assert result.exit_code == 0, result.stderr
    return {entry["path"]: entry["states"] for entry in json.loads(result.stdout)}


def two_versions(repo: Path, run, kind: str) -> Path:  # type: ignore[no-untyped-def]
    """Branch ``main`` holds version 1 of the artifact, branch ``two`` (checked out) version 2,
    both added with mreg; the work tree holds version 2 as added."""
    path = write_version(repo, kind, 1)
    assert run("add", path.name).exit_code == 0
    commit_all(repo, "version 1")
    git(repo, "checkout", "-q", "-b", "two")
    write_version(repo, kind, 2)
    assert run("add", path.name).exit_code == 0
    commit_all(repo, "version 2")
    return path


def pushed(repo: Path, run, keep_current: bool = False) -> None:  # type: ignore[no-untyped-def]
    """Both versions on the remote, the cache emptied (but for the data of the work tree's
    manifests with ``keep_current``): a pull downloads what it restores."""
    assert run("push", "--all").exit_code == 0
    keep = set()
    if keep_current:
        for manifest in repo.glob("*.mreg.toml"):
            keep |= {f["path"] for f in tomllib.loads(manifest.read_text())["lance"]["files"]}
    cache = repo / ".mreg" / "cache"
    for path in sorted((cache / "data").rglob("*"), reverse=True):
        if path.is_file() and path.relative_to(cache).as_posix() not in keep:
            path.unlink()
    shutil.rmtree(cache / "views", ignore_errors=True)


# -- item 1: a change mreg does not hold is never overwritten --------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_checkout_of_another_branch_rewrites_a_file_mreg_wrote_without_force(repo, run, kind):
    path = two_versions(repo, run, kind)
    version_2 = digest(path)
    git(repo, "checkout", "-q", "main")
    result = run("checkout")
    assert result.exit_code == 0, result.stderr
    assert digest(path) != version_2
    assert statuses(run)[path.name] == ["in sync"]


def test_a_file_an_earlier_mreg_restored_is_still_rewritten_without_force(repo, run):
    """The state of an mreg that did not list the data files of what it wrote still counts."""
    path = two_versions(repo, run, "model-file")
    state_file = repo / ".mreg" / "state.json"
    state = json.loads(state_file.read_text())
    for entry in state["restored"].values():
        entry.pop("files")
    state_file.write_text(json.dumps(state))
    git(repo, "checkout", "-q", "main")
    result = run("checkout")
    assert result.exit_code == 0, result.stderr
    assert statuses(run)[path.name] == ["in sync"]


@pytest.mark.parametrize("command", ["checkout", "pull"])
@pytest.mark.parametrize("kind", KINDS)
def test_a_change_never_added_is_refused_in_one_line_and_nothing_is_written(
    repo, run, remote_dir, kind, command
):
    path = two_versions(repo, run, kind)
    if command == "pull":
        pushed(repo, run)
    edit(path)
    git(repo, "checkout", "-q", "main")
    before = snapshot(repo)
    line = assert_refused(run(command), path.name, "--force")
    assert "mreg add" in line
    assert snapshot(repo) == before
    forced = run(command, "--force")
    assert forced.exit_code == 0, forced.stderr
    assert statuses(run)[path.name] == ["in sync"]


def test_every_target_is_checked_before_any_is_written(repo, run):
    model = write_version(repo, "model-file", 1)
    table = write_version(repo, "dataset-file", 1)
    assert run("add", model.name).exit_code == 0
    assert run("add", table.name).exit_code == 0
    commit_all(repo, "version 1")
    git(repo, "checkout", "-q", "-b", "two")
    write_version(repo, "model-file", 2)
    write_version(repo, "dataset-file", 2)
    assert run("add", model.name).exit_code == 0
    assert run("add", table.name).exit_code == 0
    commit_all(repo, "version 2")
    edit(table)
    git(repo, "checkout", "-q", "main")
    before = snapshot(repo)
    assert_refused(run("checkout"), table.name)
    assert snapshot(repo) == before


def test_a_rollback_by_name_refuses_to_overwrite_a_change_never_added(repo, run):
    path = write_version(repo, "model-file", 1)
    assert run("add", path.name).exit_code == 0
    first = commit_all(repo, "version 1")
    write_version(repo, "model-file", 2)
    assert run("add", path.name).exit_code == 0
    commit_all(repo, "version 2")
    edit(path)
    before = snapshot(repo)
    assert_refused(run("checkout", f"m@{first}"), path.name, "--force")
    assert snapshot(repo) == before


# -- item 2: files the user put in a tracked folder -----------------------------------------


@pytest.mark.parametrize("command", ["checkout", "pull"])
@pytest.mark.parametrize("switch", [True, False], ids=["other-version", "same-version"])
def test_an_untracked_file_in_a_tracked_folder_is_named_and_kept(
    repo, run, remote_dir, command, switch
):
    folder = two_versions(repo, run, "dataset-folder")
    if command == "pull":
        pushed(repo, run)
    notes = folder / "notes.txt"
    notes.write_text("my notes")
    if switch:
        git(repo, "checkout", "-q", "main")
    before = snapshot(repo)
    assert_refused(run(command), "parts/notes.txt", "--force")
    assert snapshot(repo) == before
    assert run(command, "--force").exit_code == 0
    assert not notes.exists()
    assert statuses(run)["parts"] == ["in sync"]


# -- item 6: files of artifacts the checked-out commit does not track ------------------------


def branch_without_artifact(repo: Path, run, kind: str) -> Path:  # type: ignore[no-untyped-def]
    """Branch ``bare`` has mreg but not the artifact; ``main`` (checked out) tracks it."""
    commit_all(repo, "mreg set up")
    git(repo, "branch", "bare")
    path = write_version(repo, kind, 1)
    assert run("add", path.name).exit_code == 0
    commit_all(repo, "artifact")
    return path


def untracked(repo: Path) -> list[str]:
    return [line for line in git(repo, "status", "--porcelain").splitlines() if line]


@pytest.mark.parametrize("force", [False, True], ids=["plain", "force"])
@pytest.mark.parametrize("kind", KINDS)
def test_checkout_removes_the_file_of_an_artifact_the_branch_lacks_and_restores_it_on_return(
    repo, run, kind, force
):
    path = branch_without_artifact(repo, run, kind)
    added = digest(path)
    git(repo, "checkout", "-q", "bare")
    assert run("checkout", *(["--force"] if force else [])).exit_code == 0
    assert not path.exists()
    assert untracked(repo) == []
    git(repo, "checkout", "-q", "main")
    assert run("checkout").exit_code == 0
    assert statuses(run)[path.name] == ["in sync"]
    if kind == "model-file":
        assert digest(path) == added


@pytest.mark.parametrize("kind", KINDS)
def test_a_changed_file_of_an_artifact_the_branch_lacks_is_kept_with_a_warning(repo, run, kind):
    path = branch_without_artifact(repo, run, kind)
    edit(path)
    edited = digest(path)
    git(repo, "checkout", "-q", "bare")
    for flags in ([], ["--force"]):
        result = run("checkout", *flags)
        assert result.exit_code == 0, result.stderr
        assert digest(path) == edited
        assert "warning" in result.stderr and path.name in result.stderr


# -- items 9, 10: cache bytes are hashed before this process trusts them ----------------------


def rot(path: Path) -> None:
    """Flip a byte in the middle of ``path`` in place, then put its times back: what a disk
    that rots at rest leaves (same size, mtime and inode)."""
    stat = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(stat.st_size // 2)
        byte = handle.read(1)
        handle.seek(stat.st_size // 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def largest_cache_file(repo: Path, artifact: Path) -> Path:
    manifest = tomllib.loads(artifact.with_name(artifact.name + ".mreg.toml").read_text())
    biggest = max(manifest["lance"]["files"], key=lambda f: f["size"])
    return repo / ".mreg" / "cache" / biggest["path"]


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink()


@pytest.mark.parametrize("kind", [*KINDS, "model-packed"])
def test_a_cache_file_that_rotted_at_rest_fails_checkout_in_one_line_and_is_fetched_again(
    repo, run, remote_dir, kind
):
    path = write_version(repo, kind, 1)
    added = digest(path)
    assert run("add", path.name).exit_code == 0
    assert run("push").exit_code == 0
    remove(path)
    rot(largest_cache_file(repo, path))

    assert_refused(run("checkout"), "sha256", "mreg pull")
    assert not path.exists()
    assert statuses(run)[path.name] != ["in sync"]

    pulled = run("pull")
    assert pulled.exit_code == 0, pulled.stderr
    assert statuses(run)[path.name] == ["in sync"]
    if kind.startswith("model"):
        assert digest(path) == added


def test_mreg_open_refuses_a_rotted_dataset_file(repo, run):
    path = write_version(repo, "dataset-file", 1)
    assert run("add", path.name).exit_code == 0
    rot(largest_cache_file(repo, path))
    with pytest.raises(IntegrityError, match="do not match their recorded sha256"):
        mreg.open("t")


def test_load_state_dict_refuses_a_rotted_model_file(repo, run):
    path = write_version(repo, "model-file", 1)
    assert run("add", path.name).exit_code == 0
    rot(largest_cache_file(repo, path))
    with pytest.raises(IntegrityError):
        mreg.load_state_dict("m")


def test_a_dataset_read_after_its_corrupt_file_was_fetched_again_gives_the_original_rows(
    repo, run, remote_dir
):
    path = write_version(repo, "dataset-file", 1)
    assert run("add", path.name).exit_code == 0
    assert run("push").exit_code == 0
    original = mreg.open("t").to_table()  # builds the view: hard links to the cache files
    rot(largest_cache_file(repo, path))
    with pytest.raises(IntegrityError):
        mreg.open("t")
    assert run("fetch").exit_code == 0
    assert mreg.open("t").to_table().equals(original)


def test_status_calls_a_file_edited_in_place_with_its_mtime_put_back_changed(repo, run):
    path = write_version(repo, "model-file", 1)
    assert run("add", path.name).exit_code == 0
    assert statuses(run)[path.name] == ["in sync"]
    rot(path)
    assert statuses(run)[path.name] == ["changed in workspace"]


# -- item 11: views are derived data ----------------------------------------------------------


def view_of(repo: Path) -> Path:
    (view,) = [p for p in (repo / ".mreg" / "cache" / "views").iterdir() if p.suffix == ".lance"]
    return view


@pytest.mark.parametrize("damage", ["zeroed", "deleted"])
def test_a_damaged_view_is_built_again_from_the_manifest(repo, run, damage):
    path = write_version(repo, "dataset-file", 1)
    assert run("add", path.name).exit_code == 0
    original = mreg.open("t").to_table()
    versions = view_of(repo) / "_versions"
    if damage == "deleted":
        shutil.rmtree(versions)
    else:
        for manifest in versions.iterdir():
            manifest.write_bytes(bytes(manifest.stat().st_size))
    assert mreg.open("t").to_table().equals(original)
    forced = run("checkout", "--force")
    assert forced.exit_code == 0, forced.stderr
    assert statuses(run)[path.name] == ["in sync"]


# -- temporaries of killed commands -----------------------------------------------------------

KILL_AT = {
    # After the restored output is complete and checked, before it replaces the old one.
    "restore": ("mreg.repo.restoration", "", "check_exact"),
    # At the first atomic rename: a rollback's manifest.
    "manifest": ("mreg.atomic", "PendingFile", "commit"),
    # A download complete and checked, before it enters the cache.
    "download": ("mreg.repo.cache_files", "CacheFiles", "receive"),
}


def killed(repo: Path, at: str, *args: str) -> None:
    """``mreg ARGS`` in a child process that SIGKILLs itself at ``at``."""
    module, holder, name = KILL_AT[at]
    code = (
        "import importlib, os, signal\n"
        f"holder = importlib.import_module({module!r})\n"
        f"holder = getattr(holder, {holder!r}) if {holder!r} else holder\n"
        f"setattr(holder, {name!r}, lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL))\n"
        "from mreg.cli import main\n"
        f"main({list(args)!r})\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True)
    assert done.returncode == -signal.SIGKILL, done.stderr


def temporaries(repo: Path) -> list[str]:
    return sorted(
        p.relative_to(repo).as_posix()
        for p in repo.rglob("*")
        if ".mreg-" in p.name and ".git" not in p.relative_to(repo).parts
    )


@pytest.mark.parametrize("kind", KINDS)
def test_the_next_checkout_removes_what_a_killed_checkout_left(repo, run, kind):
    path = two_versions(repo, run, kind)
    git(repo, "checkout", "-q", "main")
    killed(repo, "restore", "checkout")
    assert temporaries(repo) != []
    result = run("checkout")
    assert result.exit_code == 0, result.stderr
    assert temporaries(repo) == []
    assert statuses(run)[path.name] == ["in sync"]


def test_a_checkout_with_nothing_to_write_still_removes_what_a_killed_one_left(repo, run):
    path = two_versions(repo, run, "model-file")
    git(repo, "checkout", "-q", "main")
    killed(repo, "restore", "checkout")
    git(repo, "checkout", "-q", "two")  # back to the version the work tree holds
    assert temporaries(repo) != []
    assert run("checkout").exit_code == 0
    assert temporaries(repo) == []
    assert statuses(run)[path.name] == ["in sync"]


@pytest.mark.parametrize("kind", KINDS)
def test_the_next_pull_removes_what_a_killed_pull_left(repo, run, remote_dir, kind):
    path = two_versions(repo, run, kind)
    pushed(repo, run, keep_current=True)
    git(repo, "checkout", "-q", "main")
    killed(repo, "download", "pull", "-j", "1")
    assert temporaries(repo) != []
    result = run("pull")
    assert result.exit_code == 0, result.stderr
    assert temporaries(repo) == []
    assert statuses(run)[path.name] == ["in sync"]


def test_a_rollback_killed_while_writing_its_manifest_leaves_nothing_after_the_next(repo, run):
    path = write_version(repo, "model-file", 1)
    assert run("add", path.name).exit_code == 0
    first = commit_all(repo, "version 1")
    write_version(repo, "model-file", 2)
    assert run("add", path.name).exit_code == 0
    commit_all(repo, "version 2")
    killed(repo, "manifest", "checkout", f"m@{first}")
    assert [t for t in temporaries(repo) if t.endswith(".mreg.toml.tmp") or "toml" in t]
    assert run("checkout", f"m@{first}").exit_code == 0
    assert temporaries(repo) == []


def test_a_temporary_of_a_running_process_is_left_alone(repo, run):
    path = write_version(repo, "model-file", 1)
    assert run("add", path.name).exit_code == 0
    pending = PendingFile(path)  # this process runs: its temporary is in use
    path.unlink()
    assert run("checkout").exit_code == 0
    assert pending.temporary.exists()
    pending.discard()


# -- a cache on another file system than .mreg/tmp ---------------------------------------------


@pytest.fixture
def mounted(repo: Path, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    """A tmpfs mounted at ``.mreg/<param>``: another file system than the rest of the repo."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    folder = repo / ".mreg" / request.param
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not allowed here: {done.stderr.decode().strip()}")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.mark.parametrize("mounted", ["cache", "tmp"], indirect=True)
def test_add_checkout_and_pull_work_across_file_systems(repo, run, remote_dir, mounted):
    artifacts = [write_version(repo, kind, 1) for kind in ("model-file", "dataset-folder")]
    originals = {path.name: digest(path) for path in artifacts}
    for path in artifacts:
        result = run("add", path.name)
        assert result.exit_code == 0, result.stderr
    assert run("push").exit_code == 0
    for path in artifacts:
        remove(path)
    result = run("checkout")
    assert result.exit_code == 0, result.stderr
    shutil.rmtree(repo / ".mreg" / "cache" / "data")
    for path in artifacts:
        remove(path)
    result = run("pull")
    assert result.exit_code == 0, result.stderr
    assert statuses(run) == {name: ["in sync"] for name in originals}
    assert digest(repo / "m.safetensors") == originals["m.safetensors"]
