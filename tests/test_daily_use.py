"""Daily use as a DVC user expects it (issue 12): relative remotes, remote settings per clone,
``mreg config``, ``mreg doctor``, pulls that keep going, register hygiene, file modes, hints for
Python users, and a package that imports without POSIX-only modules."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from helpers import (
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    snapshot,
)


def _config(root: Path, local: bool = False) -> dict:  # type: ignore[type-arg]
    name = "config.local.toml" if local else "config.toml"
    path = root / ".mreg" / name
    return tomllib.loads(path.read_text()) if path.exists() else {}


@pytest.fixture
def relative_origin(tmp_path: Path, repo: Path, run, monkeypatch: pytest.MonkeyPatch) -> Path:  # type: ignore[no-untyped-def]
    """``repo`` (tmp/work) with a model pushed to the relative remote ``../store`` (tmp/store)."""
    assert run("remote", "add", "origin", "../store", "--default").exit_code == 0
    make_safetensors(repo / "model.safetensors")
    assert run("add", "model.safetensors").exit_code == 0
    commit_all(repo, "model")
    assert run("push").exit_code == 0, "push"
    return tmp_path / "store"


# -- 1. a relative local-directory remote -----------------------------------------------------


def test_relative_remote_is_kept_as_given_and_resolves_against_the_repository_root(
    tmp_path: Path, repo: Path, relative_origin: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    assert _config(repo)["remote"]["origin"]["url"] == "../store"
    assert (relative_origin / "data").is_dir()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    deep = clone / "some" / "sub" / "folder"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)  # the user works three folders below the root
    result = run("pull")
    assert result.exit_code == 0, result.stderr
    assert (clone / "model.safetensors").read_bytes() == (repo / "model.safetensors").read_bytes()


def test_clone_at_another_depth_is_told_where_the_relative_remote_points_and_sets_its_own(
    tmp_path: Path, repo: Path, relative_origin: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    near = tmp_path / "near"
    far = tmp_path / "team" / "people" / "far"
    for clone in (near, far):
        git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(near)
    assert run("pull").exit_code == 0
    monkeypatch.chdir(far)
    before = snapshot(far)
    line = assert_refused(run("pull"), "origin", str(tmp_path / "team" / "people" / "store"))
    assert "does not exist" in line and "relative to the repository root" in line
    assert "mreg remote modify origin --url" in line and "--local" in line
    assert snapshot(far) == before
    assert not (tmp_path / "team" / "people" / "store").exists()

    result = run("remote", "modify", "origin", "--url", "../../../store", "--local")
    assert result.exit_code == 0, result.stderr
    assert _config(far)["remote"]["origin"]["url"] == "../store"  # the committed file is as it was
    assert _config(far, local=True)["remote"]["origin"]["url"] == "../../../store"
    assert git(far, "status", "--porcelain") == ""
    result = run("pull")
    assert result.exit_code == 0, result.stderr
    for clone in (near, far):
        assert (clone / "model.safetensors").read_bytes() == (
            repo / "model.safetensors"
        ).read_bytes()


# -- 2. remote modify, config ---------------------------------------------------------------


def test_teammate_adds_own_credentials_to_an_existing_remote_without_committing_them(
    repo: Path, s3_remote: str, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    from seaweed import ACCESS_KEY, SECRET_KEY

    make_safetensors(repo / "model.safetensors")
    assert run("add", "model.safetensors").exit_code == 0
    commit_all(repo, "model")
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    committed = (repo / ".mreg" / "config.toml").read_bytes()

    assert_refused(run("remote", "modify", "s3", "--access-key-id", ACCESS_KEY), "together")
    assert_refused(run("remote", "modify", "nope", "--region", "x"), "does not exist")
    result = run(
        "remote", "modify", "s3", "--access-key-id", ACCESS_KEY, "--secret-access-key", SECRET_KEY
    )
    assert result.exit_code == 0, result.stderr
    assert (repo / ".mreg" / "config.toml").read_bytes() == committed
    assert _config(repo, local=True)["remote"]["s3"] == {
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
    }
    assert run("push").exit_code == 0

    result = run("config")
    assert result.exit_code == 0, result.stderr
    assert SECRET_KEY not in result.stdout
    lines = dict(line.split(" = ", 1) for line in result.stdout.splitlines())
    assert lines["remote.s3.url"] == f"{s3_remote}  (committed)"
    assert lines["remote.s3.secret_access_key"] == "****  (local)"
    assert lines["remote.s3.access_key_id"] == f"{ACCESS_KEY[:4]}****  (local)"


def test_remote_modify_writes_public_settings_to_the_committed_config_unless_local(
    repo: Path, remote_dir: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    assert run("remote", "modify", "origin", "--region", "eu-west-1").exit_code == 0
    assert _config(repo)["remote"]["origin"]["region"] == "eu-west-1"
    assert run("remote", "modify", "origin", "--profile", "me", "--local").exit_code == 0
    assert "profile" not in _config(repo)["remote"]["origin"]
    assert _config(repo, local=True)["remote"]["origin"] == {"profile": "me"}
    before = snapshot(repo)
    assert_refused(
        run("remote", "modify", "origin", "--url", "s3://KEY:SECRET@bucket/x"), "credentials"
    )
    assert_refused(run("remote", "modify", "origin"), "nothing to change")
    assert snapshot(repo) == before

    monkeypatch.setenv("MREG_REMOTE", "origin")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "very-secret-value")
    result = run("config", "--json")
    assert result.exit_code == 0, result.stderr
    import json

    settings = {s["key"]: (s["value"], s["source"]) for s in json.loads(result.stdout)}
    assert settings["remote.origin.url"] == (str(remote_dir), "committed")
    assert settings["remote.origin.region"] == ("eu-west-1", "committed")
    assert settings["remote.origin.profile"] == ("me", "local")
    assert settings["MREG_REMOTE"] == ("origin", "environment")
    assert settings["AWS_SECRET_ACCESS_KEY"] == ("****", "environment")
    assert "core.remote" not in settings  # the environment overrides it
    assert "very-secret-value" not in result.stdout


# -- 3. --version, doctor -------------------------------------------------------------------


def test_version_prints_the_installed_version(run) -> None:  # type: ignore[no-untyped-def]
    import mreg

    result = run("--version")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == f"mreg {mreg.__version__}"


def _without_git_identity(monkeypatch: pytest.MonkeyPatch) -> None:
    """No user.name/email anywhere, and no guessing one from the host name."""
    for role in ("AUTHOR", "COMMITTER"):
        monkeypatch.delenv(f"GIT_{role}_NAME")
        monkeypatch.delenv(f"GIT_{role}_EMAIL")
    import os

    Path(os.environ["GIT_CONFIG_GLOBAL"]).write_text("[user]\n\tuseConfigOnly = true\n")


def test_doctor_passes_on_a_healthy_repository(repo: Path, relative_origin: Path, run) -> None:  # type: ignore[no-untyped-def]
    result = run("doctor")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    assert "ok   git identity: mreg tests <tests@mreg.invalid>" in result.stdout
    assert "ok   remote 'origin': reachable" in result.stdout


def test_doctor_names_every_problem_with_its_fix_and_exits_1(
    repo: Path, relative_origin: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    import json

    _without_git_identity(monkeypatch)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    # An S3 remote whose endpoint refuses connections, with no credentials anywhere.
    url = "http://127.0.0.1:9"
    assert run("remote", "add", "dead", "s3://bucket/x", "--endpoint-url", url).exit_code == 0
    data = next((repo / ".mreg" / "cache" / "data").rglob("*.lance"))
    data.write_bytes(data.read_bytes()[:-1])  # a cache file cut short
    before = snapshot(repo)

    result = run("doctor", "--json")
    assert result.exit_code == 1
    checks = {c["name"]: c for c in json.loads(result.stdout)}
    failed = {name for name, check in checks.items() if not check["ok"]}
    assert failed == {"git identity", "remote 'dead' credentials", "remote 'dead'", "cache"}
    assert all(checks[name]["fix"] for name in failed)
    assert "git config --global user.email" in checks["git identity"]["fix"]
    assert "mreg remote modify dead --access-key-id" in checks["remote 'dead' credentials"]["fix"]
    assert data.relative_to(repo / ".mreg" / "cache").as_posix() in checks["cache"]["detail"]
    assert checks["remote 'origin'"]["ok"]
    assert snapshot(repo) == before


# -- 4. pull and fetch keep going past a file the remote lacks ---------------------------------


@pytest.fixture
def one_lost_on_the_remote(tmp_path: Path, repo: Path, remote_dir: Path, run) -> tuple[Path, str]:  # type: ignore[no-untyped-def]
    """Three models pushed, then the data of ``lost.safetensors`` deleted from the remote;
    returns a fresh clone and the commit that last changed the lost model's manifest."""
    for seed, name in enumerate(("alpha", "lost", "omega")):
        make_safetensors(repo / f"{name}.safetensors", seed=seed)
        assert run("add", f"{name}.safetensors").exit_code == 0
        commit_all(repo, f"model {name}")
    lost_commit = git(repo, "log", "-1", "--format=%h", "--", "lost.safetensors.mreg.toml").strip()
    assert run("push").exit_code == 0
    lost = tomllib.loads((repo / "lost.safetensors.mreg.toml").read_text())
    for entry in lost["lance"]["files"]:
        (remote_dir / entry["path"]).unlink()
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    return clone, lost_commit


@pytest.mark.parametrize("command", ["pull", "fetch"])
def test_pull_and_fetch_get_every_other_artifact_then_name_the_one_the_remote_lacks(
    repo: Path,
    one_lost_on_the_remote: tuple[Path, str],
    run,
    monkeypatch: pytest.MonkeyPatch,
    command: str,
) -> None:  # type: ignore[no-untyped-def]
    clone, lost_commit = one_lost_on_the_remote
    monkeypatch.chdir(clone)
    line = assert_refused(run(command), "'lost'", "lost.safetensors", lost_commit, "origin")
    assert line.index("'lost'") < line.index("data/")  # the artifact first, then its files
    if command == "fetch":
        assert run("checkout", "alpha", "omega").exit_code == 0
    for name in ("alpha", "omega"):
        restored = (clone / f"{name}.safetensors").read_bytes()
        assert restored == (repo / f"{name}.safetensors").read_bytes()
    assert not (clone / "lost.safetensors").exists()


def test_pull_help_says_that_it_keeps_going(run) -> None:  # type: ignore[no-untyped-def]
    for command in ("pull", "fetch"):
        text = " ".join(run(command, "--help").stdout.split())
        assert "keeps going" in text.lower()


# -- 5. register hygiene ----------------------------------------------------------------------


def _git_index(root: Path) -> str:
    return git(root, "ls-files", "--stage")


def test_register_ignores_the_source_file_so_git_add_all_never_commits_the_weights(
    repo: Path, run
) -> None:  # type: ignore[no-untyped-def]
    commit_all(repo, "mreg init")
    make_safetensors(repo / "weights.safetensors")
    result = run("register", "weights.safetensors", "--name", "net")
    assert result.exit_code == 0, result.stderr
    commit_all(repo, "everything else")  # what a user types next
    committed = git(repo, "ls-files").split()
    assert "weights.safetensors" not in committed
    assert not any(path.endswith("model.safetensors") for path in committed)
    assert "/weights.safetensors" in (repo / ".gitignore").read_text().splitlines()


def test_register_of_a_file_git_tracks_leaves_it_tracked_and_unignored(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "weights.safetensors")
    commit_all(repo, "the user chose to commit the weights")
    assert run("register", "weights.safetensors", "--name", "net").exit_code == 0
    assert "weights.safetensors" in git(repo, "ls-files").split()
    gitignore = repo / ".gitignore"
    assert not gitignore.exists() or "/weights.safetensors" not in gitignore.read_text()


def test_register_without_a_git_identity_fails_first_and_changes_nothing(
    repo: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    commit_all(repo, "mreg init")
    make_safetensors(repo / "weights.safetensors")
    (repo / "notes.txt").write_text("work in progress\n")
    git(repo, "add", "notes.txt")  # something the user staged themselves
    index, files, tags = _git_index(repo), snapshot(repo), git(repo, "tag")
    _without_git_identity(monkeypatch)

    result = run("register", "weights.safetensors", "--name", "net")
    assert_refused(result, "git", "identity", "user.email")
    assert _git_index(repo) == index
    assert snapshot(repo) == files
    assert git(repo, "tag") == tags
    assert not (repo / "models").exists()


# -- 6. file modes ----------------------------------------------------------------------------


@pytest.fixture
def umask():  # type: ignore[no-untyped-def]
    """Set the process umask for one test, then put the old one back."""
    import os

    old = os.umask(0o022)
    yield lambda mask: os.umask(mask)
    os.umask(old)


def _mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o002, 0o664)])
def test_restored_files_manifests_and_remote_copies_get_the_users_umask_mode(
    repo: Path, remote_dir: Path, run, umask, mask: int, expected: int
) -> None:  # type: ignore[no-untyped-def]
    umask(mask)
    model = make_safetensors(repo / "model.safetensors")
    assert run("add", "model.safetensors").exit_code == 0
    assert run("push").exit_code == 0
    model.unlink()
    assert run("checkout").exit_code == 0
    assert _mode(model) == expected
    assert _mode(repo / "model.safetensors.mreg.toml") == expected
    assert _mode(repo / ".gitignore") == expected
    assert {_mode(p) for p in (remote_dir / "data").rglob("*") if p.is_file()} == {expected}


def test_the_local_config_holding_secrets_stays_private_to_its_owner(
    repo: Path, run, umask
) -> None:  # type: ignore[no-untyped-def]
    assert (
        run(
            "remote", "add", "s3", "s3://b/p", "--access-key-id", "K", "--secret-access-key", "S"
        ).exit_code
        == 0
    )
    assert _mode(repo / ".mreg" / "config.local.toml") == 0o600
    assert _mode(repo / ".mreg" / "config.toml") == 0o644


# -- 7. hints for Python users ----------------------------------------------------------------


def test_python_users_see_the_hint_in_the_exception_message(repo: Path) -> None:
    import mreg
    from mreg.errors import RemoteError

    with pytest.raises(RemoteError, match=r"no default remote set \(hint: run `mreg remote add"):
        mreg.Repo(".").push()


def test_the_cli_prints_the_hint_once(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    line = assert_refused(run("push"), "no default remote set")
    assert line.count("hint:") == 1 and line.count("mreg remote add") == 1


# -- 8. portability ---------------------------------------------------------------------------

POSIX_ONLY = ("fcntl", "termios", "pwd", "grp", "resource")


def test_every_mreg_module_imports_without_posix_only_modules() -> None:
    """As on Windows: ``fcntl`` and the like do not exist there."""
    import subprocess
    import sys

    code = f"""
import importlib, pkgutil, sys
for name in {POSIX_ONLY!r}:
    sys.modules[name] = None  # import fails, as where the module does not exist
import mreg
failed = []
for info in pkgutil.walk_packages(mreg.__path__, "mreg."):
    try:
        importlib.import_module(info.name)
    except ImportError as error:
        if any(name in str(error) for name in {POSIX_ONLY!r}):
            failed.append(f"{{info.name}}: {{error}}")
print("\\n".join(failed))
"""
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["win32", "darwin"])
def test_mreg_type_checks_for_windows_and_macos(platform: str) -> None:
    """mypy knows each platform's ``os``: a POSIX-only call (``os.pwrite``, ``os.O_DIRECT``)
    outside a guard is an error there."""
    import shutil
    import subprocess

    if shutil.which("mypy") is None:
        pytest.skip("mypy is not installed")
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["mypy", "--platform", platform, "mreg"],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert done.returncode == 0, done.stdout
