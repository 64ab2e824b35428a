from helpers import make_safetensors


def test_add_then_status_reports_in_sync(repo, run):
    make_safetensors(repo / "m.safetensors")
    assert run("add", "m.safetensors").exit_code == 0
    result = run("status")
    assert result.stdout.strip() == "m (m.safetensors): in sync"
