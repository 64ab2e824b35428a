"""``mreg add`` and ``mreg register`` under interruption and concurrency, and git hygiene.

Kills are real signals sent to the ``mreg`` console script of this work tree, at moments the test
sees from outside (the conversion started, the manifest changed) and at random delays; after the
re-run that the interrupted command asks for, the repository must hold every row exactly once.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch
from helpers import (
    assert_one_line_error,
    assert_refused,
    commit_all,
    git,
    init_work_tree,
    make_safetensors,
    make_tensors,
    snapshot,
)

import mreg
from mreg.registry import ModelClassError

ROOT = Path(__file__).resolve().parents[2]
BASE_ROWS = 2_000_000
BATCH_ROWS = 1_000


def mreg_process(*args: str, cwd: Path) -> subprocess.Popen[str]:
    """The ``mreg`` console script, running this work tree's code."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MREG_NO_PROGRESS": "1"}
    command = shutil.which("mreg") or "mreg"
    return subprocess.Popen(
        [command, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def mreg_run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    process = mreg_process(*args, cwd=cwd)
    out, err = process.communicate(timeout=300)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def table(start: int, rows: int) -> pa.Table:
    ids = pa.array(range(start, start + rows), pa.int64())
    labels = pc.binary_join_element_wise("item-", pc.cast(ids, pa.string()), "")
    scores = pc.divide(pc.cast(ids, pa.float64()), 10)
    return pa.table({"id": ids, "label": labels, "score": scores})


# -- item 5: an interrupted append is invisible or complete, and its re-run idempotent -------


@pytest.fixture(scope="module")
def dataset_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A committed repository with ``t.parquet`` (2,000,000 rows) added, copied by each trial."""
    root = init_work_tree(tmp_path_factory.mktemp("template") / "work")
    assert mreg_run("init", cwd=root).returncode == 0
    pq.write_table(table(0, BASE_ROWS), root / "t.parquet")
    added = mreg_run("add", "t.parquet", cwd=root)
    assert added.returncode == 0, added.stderr
    commit_all(root, "base")
    return root


@pytest.fixture
def dataset_repo(dataset_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "work"
    shutil.copytree(dataset_template, root, symlinks=True)
    monkeypatch.chdir(root)
    return root


def wait_for(process: subprocess.Popen[str], seen: Callable[[], bool]) -> None:
    """Poll until ``seen()`` (or the process ends)."""
    deadline = time.monotonic() + 120
    while process.poll() is None and time.monotonic() < deadline and not seen():
        time.sleep(0.002)


def converting(root: Path) -> Callable[[], bool]:
    tmp = root / ".mreg" / "tmp"
    return lambda: tmp.exists() and any(tmp.rglob("*.lance"))


def manifest_changed(root: Path) -> Callable[[], bool]:
    manifest = root / "t.parquet.mreg.toml"
    before = manifest.read_bytes()
    return lambda: manifest.read_bytes() != before


def after_random_delay(seconds: float) -> Callable[[], bool]:
    deadline = time.monotonic() + seconds
    return lambda: time.monotonic() >= deadline


def assert_every_row_once(root: Path, appended: int) -> None:
    """The dataset, the work-tree file and ``mreg status`` agree: old rows plus ``appended``."""
    expected = BASE_ROWS + appended
    ids = mreg.open("t").to_table(columns=["id"]).column("id")
    assert len(ids) == expected
    assert pc.count_distinct(ids).as_py() == expected
    on_disk = pq.read_table(root / "t.parquet", columns=["id"]).column("id")
    assert len(on_disk) == expected and pc.count_distinct(on_disk).as_py() == expected
    status = mreg_run("status", cwd=root)
    assert status.stdout.strip() == "t (t.parquet): in sync", status.stdout + status.stderr


MOMENTS = {
    "while converting": converting,
    "as the manifest changes": manifest_changed,
}


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
@pytest.mark.parametrize("moment", list(MOMENTS))
def test_an_interrupted_append_rerun_as_asked_holds_every_row_exactly_once(
    dataset_repo: Path, sig: signal.Signals, moment: str
) -> None:
    pq.write_table(table(BASE_ROWS, BATCH_ROWS), dataset_repo / "more.parquet")
    command = ("add", "more.parquet", "--name", "t", "--mode", "append")
    process = mreg_process(*command, cwd=dataset_repo)
    wait_for(process, MOMENTS[moment](dataset_repo))
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    if process.returncode != 0:
        assert process.returncode in (130, -signal.SIGKILL), stderr
        rerun = mreg_run(*command, cwd=dataset_repo)
        assert rerun.returncode == 0, rerun.stderr
    assert_every_row_once(dataset_repo, BATCH_ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(4))
def test_an_append_killed_at_a_random_moment_then_rerun_holds_every_row_exactly_once(
    dataset_repo: Path, trial: int
) -> None:
    rng = random.Random(trial)
    pq.write_table(table(BASE_ROWS, BATCH_ROWS), dataset_repo / "more.parquet")
    command = ("add", "more.parquet", "--name", "t", "--mode", "append")
    process = mreg_process(*command, cwd=dataset_repo)
    wait_for(process, after_random_delay(rng.uniform(0.5, 2.0)))
    process.send_signal(rng.choice([signal.SIGINT, signal.SIGKILL]))
    process.communicate(timeout=120)
    rerun = mreg_run(*command, cwd=dataset_repo)
    assert rerun.returncode == 0, rerun.stderr
    assert_every_row_once(dataset_repo, BATCH_ROWS)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["SIGINT", "SIGKILL"])
def test_an_interrupted_append_of_the_artifact_file_itself_rerun_holds_every_row_once(
    dataset_repo: Path, sig: signal.Signals
) -> None:
    # The artifact's own file now holds only the new rows: `mreg add t.parquet --mode append`.
    pq.write_table(table(BASE_ROWS, BATCH_ROWS), dataset_repo / "t.parquet")
    command = ("add", "t.parquet", "--mode", "append")
    process = mreg_process(*command, cwd=dataset_repo)
    wait_for(process, manifest_changed(dataset_repo))
    process.send_signal(sig)
    process.communicate(timeout=120)
    rerun = mreg_run(*command, cwd=dataset_repo)
    assert rerun.returncode == 0, rerun.stderr
    assert_every_row_once(dataset_repo, BATCH_ROWS)


def test_rerunning_a_completed_append_adds_nothing(repo, run):
    pq.write_table(table(0, 100), repo / "t.parquet")
    assert run("add", "t.parquet").exit_code == 0
    pq.write_table(table(100, 10), repo / "more.parquet")
    assert run("add", "more.parquet", "--name", "t", "--mode", "append").exit_code == 0
    before = snapshot(repo)

    again = run("add", "more.parquet", "--name", "t", "--mode", "append")

    assert again.exit_code == 0, again.stderr
    assert "unchanged" in again.stdout
    assert snapshot(repo) == before
    assert mreg.open("t").count_rows() == 110
    # A new batch is appended as usual.
    pq.write_table(table(110, 5), repo / "more.parquet")
    assert run("add", "more.parquet", "--name", "t", "--mode", "append").exit_code == 0
    assert mreg.open("t").to_table().column("id").to_pylist() == list(range(115))


def test_appending_the_artifact_file_to_itself_after_an_append_adds_nothing(repo, run):
    pq.write_table(table(0, 100), repo / "t.parquet")
    assert run("add", "t.parquet").exit_code == 0
    pq.write_table(table(100, 10), repo / "t.parquet")
    assert run("add", "t.parquet", "--mode", "append").exit_code == 0
    assert pq.read_table(repo / "t.parquet").num_rows == 110

    again = run("add", "t.parquet", "--mode", "append")

    assert again.exit_code == 0, again.stderr
    assert mreg.open("t").to_table().column("id").to_pylist() == list(range(110))
    assert pq.read_table(repo / "t.parquet").num_rows == 110


@pytest.mark.parametrize("form", ["another file", "the artifact file itself"])
def test_an_append_killed_between_its_manifest_and_its_file_is_finished_by_the_rerun(
    repo, run, form
):
    # What a kill after the manifest was written and before the rewritten file replaced the old
    # one leaves: the new manifest beside the file as it was before the append.
    pq.write_table(table(0, 100), repo / "t.parquet")
    assert run("add", "t.parquet").exit_code == 0
    batch = repo / ("more.parquet" if form == "another file" else "t.parquet")
    before_append = (repo / "t.parquet").read_bytes()
    pq.write_table(table(100, 10), batch)
    left_behind = batch.read_bytes() if form != "another file" else before_append
    command = ("add", batch.name, "--mode", "append", "--name", "t")
    assert run(*command).exit_code == 0
    (repo / "t.parquet").write_bytes(left_behind)
    assert "changed in workspace" in run("status").stdout

    rerun = run(*command)

    assert rerun.exit_code == 0, rerun.stderr
    assert mreg.open("t").to_table().column("id").to_pylist() == list(range(110))
    assert pq.read_table(repo / "t.parquet").column("id").to_pylist() == list(range(110))
    assert "in sync" in run("status").stdout


# -- item 7: concurrent registrations of one model --------------------------------------------


def registered_versions(root: Path, name: str) -> list[str]:
    tags = git(root, "tag", "--list", f"{name}@v*").split()
    return sorted(tag.split("@", 1)[1] for tag in tags)


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_two_registrations_at_once_get_their_own_versions_weights_and_metrics(
    repo, tmp_path, trial
):
    seeds = (10 * trial, 10 * trial + 1)
    paths = [make_safetensors(tmp_path / f"w{seed}.safetensors", seed=seed) for seed in seeds]
    commit_all(repo, "start")  # .mreg/ committed, as a team's repository is

    processes = [
        mreg_process("register", str(path), "--name", "clf", "--metric", f"seed={seed}", cwd=repo)
        for path, seed in zip(paths, seeds, strict=True)
    ]
    results = [process.communicate(timeout=300) for process in processes]

    for process, (_, stderr) in zip(processes, results, strict=True):
        if process.returncode != 0:  # a clear conflict is the one other acceptable outcome
            assert_one_line_error(stderr, "another mreg command")
    succeeded = sum(process.returncode == 0 for process in processes)
    versions = registered_versions(repo, "clf")
    assert len(versions) == succeeded >= 1
    registry = mreg.ModelRegistry(repo)
    seen_seeds = set()
    for version in versions:
        seed = int(registry.get_model_info("clf", version).metadata.performance_metrics["seed"])
        weights, _ = registry.load_model("clf", version)
        expected = make_tensors(seed)
        assert sorted(weights) == sorted(expected)
        for key, value in expected.items():
            assert np.array_equal(weights[key].numpy(), value), (version, seed, key)
        seen_seeds.add(seed)
    assert len(seen_seeds) == len(versions)
    assert git(repo, "status", "--porcelain") == ""


# -- item 8: git hygiene ----------------------------------------------------------------------


@pytest.mark.parametrize("state", ["committed", "staged"])
def test_adding_a_file_git_tracks_is_refused_with_the_git_rm_cached_hint(repo, run, state):
    pq.write_table(table(0, 10), repo / "t.parquet")
    git(repo, "add", "t.parquet")
    if state == "committed":
        git(repo, "commit", "-q", "-m", "data in git")
    before = snapshot(repo)

    line = assert_refused(run("add", "t.parquet"), "t.parquet", "git rm --cached t.parquet")

    assert "tracked by git" in line
    assert snapshot(repo) == before
    assert git(repo, "ls-files", "t.parquet").strip() == "t.parquet"


def test_adding_a_folder_that_holds_a_file_git_tracks_is_refused(repo, run):
    folder = repo / "sales"
    folder.mkdir()
    pq.write_table(table(0, 10), folder / "part-0.parquet")
    pq.write_table(table(10, 10), folder / "part-1.parquet")
    commit_all(repo, "a folder in git")
    before = snapshot(repo)

    assert_refused(run("add", "sales"), "sales", "git rm -r --cached sales")

    assert snapshot(repo) == before


def test_after_git_rm_cached_the_add_goes_through_and_git_forgets_the_file(repo, run):
    pq.write_table(table(0, 10), repo / "t.parquet")
    commit_all(repo, "data in git")
    git(repo, "rm", "-q", "--cached", "t.parquet")

    assert run("add", "t.parquet").exit_code == 0

    commit_all(repo, "tracked by mreg")
    assert git(repo, "ls-files", "t.parquet") == ""


# A file name with characters that mean something in a .gitignore line, and a name that such a
# line would wrongly match too.
GLOB_NAMES = {
    "bang": ("!keep.parquet", "keep.parquet"),
    "hash": ("#notes.parquet", "notes.parquet"),
    "star": ("*.parquet", "other.parquet"),
    "question mark": ("what?.parquet", "whatX.parquet"),
    "brackets": ("data[1].parquet", "data1.parquet"),
    "backslash": ("back\\slash.parquet", "backslash.parquet"),
    "trailing space": ("spaced.parquet ", "spaced.parquet"),
}


def git_ignores(root: Path, name: str) -> bool:
    done = subprocess.run(["git", "check-ignore", "-q", "--", name], cwd=root, check=False)
    assert done.returncode in (0, 1), done
    return done.returncode == 0


def untracked(root: Path) -> set[str]:
    output = git(root, "status", "--porcelain", "-z", "--untracked-files=all")
    return {entry[3:] for entry in output.split("\0") if entry.startswith("?? ")}


@pytest.mark.parametrize("kind", list(GLOB_NAMES))
def test_a_file_name_with_gitignore_metacharacters_is_ignored_exactly(repo, run, kind):
    name, similar = GLOB_NAMES[kind]
    pq.write_table(table(0, 10), repo / name)
    pq.write_table(table(0, 10), repo / similar)

    result = run("add", name, "--format", "parquet")

    assert result.exit_code == 0, result.stderr
    assert git_ignores(repo, name)
    assert not git_ignores(repo, similar)
    assert not git_ignores(repo, name + ".mreg.toml")
    left = untracked(repo)
    assert name not in left
    assert {similar, name + ".mreg.toml", ".gitignore"} <= left
    # Once written, the line is not written again.
    gitignore = (repo / ".gitignore").read_text()
    pq.write_table(table(0, 11), repo / name)
    assert run("add", name, "--format", "parquet").exit_code == 0
    assert (repo / ".gitignore").read_text() == gitignore


# -- item 14: loading constructs only classes the user allows ----------------------------------


def tagged_model(repo, run, *meta: str, name: str = "m") -> None:  # type: ignore[no-untyped-def]
    """A model version as a cloned repository can hold it: a manifest whose metadata name a
    class and its arguments, committed and tagged."""
    make_safetensors(repo / f"{name}.safetensors")
    args = [arg for pair in meta for arg in ("--meta", pair)]
    assert run("add", f"{name}.safetensors", *args).exit_code == 0
    commit_all(repo, "a model")
    assert run("tag", name, "v0.1.0").exit_code == 0


HOSTILE_CLASSES = {
    "subprocess.Popen": lambda marker: {"args": ["touch", str(marker)]},
    "os.system": lambda marker: {"command": f"touch {marker}"},
}


@pytest.mark.parametrize("class_path", list(HOSTILE_CLASSES))
def test_a_manifest_naming_a_callable_outside_the_allow_list_runs_nothing(
    repo, run, tmp_path, class_path
):
    marker = tmp_path / "ran"
    kwargs = json.dumps(HOSTILE_CLASSES[class_path](marker))
    tagged_model(repo, run, f"model_class={class_path}", f"init_kwargs={kwargs}")

    with pytest.raises(ModelClassError, match=f"{re.escape(class_path)} is not trusted"):
        mreg.ModelRegistry(repo).load_model("m")
    validated = run("validate")

    assert validated.exit_code == 1
    assert f"{class_path} is not trusted" in validated.stdout + validated.stderr
    assert not marker.exists()


def test_a_module_named_by_a_manifest_is_not_imported_unless_trusted(
    repo, run, tmp_path, monkeypatch
):
    marker = tmp_path / "imported"
    code = tmp_path / "code"
    code.mkdir()
    (code / "planted_models.py").write_text(
        f"open({str(marker)!r}, 'w').close()\n"
        "import torch\n\n\nclass Net(torch.nn.Module):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(code))
    tagged_model(repo, run, "model_class=planted_models.Net")

    registry = mreg.ModelRegistry(repo)
    with pytest.raises(ModelClassError) as refused, registry.temporary_model("m"):
        pass

    assert not marker.exists()
    assert "planted_models" not in sys.modules
    message = str(refused.value)
    assert "\n" not in message and "planted_models.Net is not trusted" in message
    assert "trusted_modules" in (refused.value.hint or "")


def test_the_one_line_error_says_how_to_trust_a_module(repo, run):
    tagged_model(repo, run, "model_class=registry_models.TinyClassifier")

    line = assert_refused(run("export", "m", "--format", "pth", "-o", "out.pth"), "not trusted")

    assert "registry_models" in line and "MREG_TRUSTED_MODULES" in line


def test_a_torch_nn_class_loads_without_opting_in(repo):
    net = torch.nn.Linear(4, 3)
    registry = mreg.ModelRegistry(repo)
    registry.register_pytorch_model("lin", net, init_kwargs={"in_features": 4, "out_features": 3})

    loaded, _ = mreg.ModelRegistry(repo).load_model("lin")

    assert type(loaded) is torch.nn.Linear
    assert torch.equal(loaded.weight, net.weight)


def test_a_name_in_torch_nn_that_is_not_a_module_class_is_not_called(repo, run):
    tagged_model(repo, run, "model_class=torch.nn.functional.relu", "init_kwargs={}")

    with pytest.raises(ModelClassError, match=r"not a torch\.nn\.Module class"):
        mreg.ModelRegistry(repo).load_model("m")


def trust_by_argument(repo: Path, monkeypatch: pytest.MonkeyPatch) -> mreg.ModelRegistry:
    return mreg.ModelRegistry(repo, trusted_modules=["registry_models"])


def trust_by_environment(repo: Path, monkeypatch: pytest.MonkeyPatch) -> mreg.ModelRegistry:
    monkeypatch.setenv("MREG_TRUSTED_MODULES", "numpy, registry_models")
    return mreg.ModelRegistry(repo)


def trust_by_local_config(repo: Path, monkeypatch: pytest.MonkeyPatch) -> mreg.ModelRegistry:
    (repo / ".mreg" / "config.local.toml").write_text(
        '[registry]\ntrusted_modules = ["registry_models"]\n'
    )
    return mreg.ModelRegistry(repo)


@pytest.mark.parametrize(
    "trusting", [trust_by_argument, trust_by_environment, trust_by_local_config]
)
def test_a_class_of_a_module_the_user_trusts_loads(repo, monkeypatch, trusting):
    from registry_models import TinyClassifier

    mreg.ModelRegistry(repo).register_pytorch_model(
        "clf", TinyClassifier(hidden=5), init_kwargs={"hidden": 5}
    )

    loaded, _ = trusting(repo, monkeypatch).load_model("clf")

    assert isinstance(loaded, TinyClassifier)


def test_a_committed_config_cannot_trust_modules_for_the_user(repo, run):
    from registry_models import TinyClassifier

    (repo / ".mreg" / "config.toml").write_text(
        '[registry]\ntrusted_modules = ["registry_models"]\n'
    )
    registry = mreg.ModelRegistry(repo)
    registry.register_pytorch_model("clf", TinyClassifier(), init_kwargs={})

    with pytest.raises(ModelClassError, match=r"registry_models\.TinyClassifier is not trusted"):
        mreg.ModelRegistry(repo).load_model("clf")


def test_register_with_init_kwargs_that_are_not_json_is_one_line_and_writes_nothing(
    repo, run, tmp_path
):
    weights = make_safetensors(tmp_path / "w.safetensors")
    commit_all(repo, "start")
    before = snapshot(repo), git(repo, "log", "--oneline"), git(repo, "tag", "--list")

    assert_refused(
        run("register", str(weights), "--name", "m", "--meta", "init_kwargs=not-json"),
        "init_kwargs",
    )
    assert_refused(
        run("register", str(weights), "--name", "m", "--meta", "init_kwargs=[1, 2]"),
        "init_kwargs",
    )

    assert (snapshot(repo), git(repo, "log", "--oneline"), git(repo, "tag", "--list")) == before


def test_add_with_registry_metadata_that_does_not_parse_is_one_line_and_writes_nothing(repo, run):
    make_safetensors(repo / "m.safetensors")
    before = snapshot(repo)

    assert_refused(run("add", "m.safetensors", "--meta", "init_kwargs=not-json"), "init_kwargs")

    assert snapshot(repo) == before


def test_a_committed_manifest_with_malformed_registry_metadata_is_a_one_line_error(repo, run):
    tagged_model(repo, run)
    manifest = repo / "m.safetensors.mreg.toml"
    manifest.write_text(manifest.read_text() + '\n[meta]\ninit_kwargs = "not-json"\n')
    commit_all(repo, "planted")
    git(repo, "tag", "-f", "-a", "m@v0.1.0", "-m", "again")

    assert_refused(run("models"), "init_kwargs")


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(3))
def test_two_stage_moves_at_once_get_distinct_event_numbers(repo, run, tmp_path, trial):
    for seed in (0, 1):
        weights = make_safetensors(tmp_path / f"w{seed}.safetensors", seed=seed)
        assert run("register", str(weights), "--name", "clf").exit_code == 0

    processes = [
        mreg_process("stage", "clf", version, stage, cwd=repo)
        for version, stage in (("v0.1.0", "prod"), ("v0.1.1", "staging"))
    ]
    for process in processes:
        _, stderr = process.communicate(timeout=120)
        assert process.returncode == 0, stderr

    events = git(repo, "tag", "--list", "clf#*").split()
    assert sorted(int(tag.rsplit("#", 1)[1]) for tag in events) == [1, 2]
    assert mreg.ModelRegistry(repo).stages("clf") == {"prod": "v0.1.0", "staging": "v0.1.1"}
