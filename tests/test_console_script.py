"""The installed ``mreg`` command leaves without the interpreter's teardown; what a caller sees
(output, exit status, finished work) is what a normal exit gives."""

import json
import shutil
import subprocess
import sys

import pytest
from helpers import commit_all, make_safetensors

from mreg.cli import _exit_status


def mreg(*args: str, cwd) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    command = shutil.which("mreg")
    assert command is not None, "the console script is installed with the package"
    return subprocess.run([command, *args], cwd=cwd, capture_output=True, text=True)


def test_piped_output_arrives_whole_with_status_zero(repo):
    for index in range(3):
        make_safetensors(repo / f"model{index:02}.safetensors", seed=index)
        assert mreg("add", f"model{index:02}.safetensors", cwd=repo).returncode == 0

    done = mreg("ls", "--json", cwd=repo)

    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)
    assert sorted(item["name"] for item in listed) == [f"model{i:02}" for i in range(3)]


def test_exit_statuses_pass_through(tmp_path):
    assert mreg("--help", cwd=tmp_path).returncode == 0
    usage = mreg("no-such-command", cwd=tmp_path)
    assert usage.returncode == 2
    assert "No such command" in usage.stderr
    refused = mreg("status", cwd=tmp_path)
    assert refused.returncode == 1
    assert refused.stderr.startswith("error:")


def test_work_done_on_threads_is_finished_before_the_process_ends(repo, remote_dir):
    make_safetensors(repo / "m.safetensors", layers=40, width=64)
    assert mreg("add", "m.safetensors", cwd=repo).returncode == 0
    commit_all(repo, "add m")

    pushed = mreg("push", "-j", "4", cwd=repo)

    assert pushed.returncode == 0, pushed.stderr
    checked = mreg("verify", "--remote", "origin", cwd=repo)
    assert checked.returncode == 0, checked.stderr + checked.stdout


def test_atexit_handlers_still_run(tmp_path):
    marker = tmp_path / "ran"
    code = (
        "import atexit, pathlib, sys\n"
        f"atexit.register(pathlib.Path({str(marker)!r}).touch)\n"
        "sys.argv = ['mreg', '--help']\n"
        "from mreg.cli import script\n"
        "script()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert done.returncode == 0, done.stderr
    assert "Usage" in done.stdout
    assert marker.exists()


@pytest.mark.parametrize(
    ("code", "status", "printed"),
    [(None, 0, ""), (0, 0, ""), (3, 3, ""), ("stopped: no space", 1, "stopped: no space\n")],
)
def test_system_exit_codes_mean_what_the_interpreter_makes_of_them(capsys, code, status, printed):
    assert _exit_status(code) == status
    assert capsys.readouterr().err == printed
