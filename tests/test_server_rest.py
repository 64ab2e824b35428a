"""``mreg serve`` over REST: a real server subprocess, real httpx requests on loopback."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
from helpers import Marker, commit_all, git, make_safetensors, make_table
from serve_helpers import READER, WRITER, mreg_serve

API = "/api/v1"


def upload(server, name: str, path: Path, token: str | None = WRITER, **fields: str):  # type: ignore[no-untyped-def]
    with open(path, "rb") as f:
        return httpx.post(
            f"{server.url}{API}/models/{name}/versions",
            headers=server.headers(token),
            files={"file": (path.name, f)},
            data=fields,
            timeout=60,
        )


def tags(root: Path) -> list[str]:
    return git(root, "tag", "--list").split()


def leftovers(root: Path) -> list[str]:
    tmp = root / ".mreg" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


@pytest.fixture
def served(repo: Path, run, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A repository with model ``net`` v0.1.0 and dataset ``table`` (1,000 rows), served."""
    assert (
        run("register", make_safetensors(tmp_path / "net.safetensors"), "--name", "net").exit_code
        == 0
    )
    make_table(repo / "table.parquet", rows=1000)
    assert run("add", "table.parquet").exit_code == 0
    commit_all(repo, "table")
    with mreg_serve(repo) as server:
        yield server


def test_health_and_the_openapi_document_answer(served):  # type: ignore[no-untyped-def]
    health = httpx.get(f"{served.url}{API}/health").json()
    assert health["status"] == "ok" and health["read_only"] is False
    paths = httpx.get(f"{served.url}{API}/openapi.json", headers=served.headers(READER)).json()[
        "paths"
    ]
    assert f"{API}/models/{{name}}/versions" in paths and "/model-registry/models" in paths


def test_a_server_without_tokens_says_it_is_read_only_and_refuses_writes(
    repo: Path, tmp_path: Path
):
    with mreg_serve(repo, tokens=None) as server:
        assert httpx.get(f"{server.url}{API}/models").status_code == 200
        answer = upload(server, "net", make_safetensors(tmp_path / "m.safetensors"), token=None)
    assert answer.status_code == 403
    assert answer.json()["error"] == "this server is read-only"
    assert "read-only" in server.log.read_text()


def test_uploads_register_versions_committed_by_the_token_s_name_then_stage_and_search(
    served, repo, tmp_path
):  # type: ignore[no-untyped-def]
    for seed in (1, 2, 3):
        metadata = json.dumps({"performance_metrics": {"accuracy": seed / 10}, "tags": ["cv"]})
        answer = upload(
            served,
            "net",
            make_safetensors(tmp_path / f"{seed}.safetensors", seed),
            metadata=metadata,
        )
        assert answer.status_code == 201, answer.text
        assert answer.json()["version"] == f"v0.1.{seed}"
    assert git(repo, "log", "-1", "--format=%an", "net@v0.1.3").strip() == "alice"
    staged = httpx.post(
        f"{served.url}{API}/models/net/stages",
        headers=served.headers(),
        json={"version": "v0.1.2", "stage": "prod"},
    )
    assert staged.json() == {"tag": "net#prod#1"}
    found = httpx.get(
        f"{served.url}{API}/search",
        headers=served.headers(READER),
        params={"q": "accuracy>=0.2 tag:cv"},
    ).json()
    assert isinstance(found, list), found
    assert [e["version"] for e in found] == ["v0.1.2", "v0.1.3"]
    prod = httpx.get(
        f"{served.url}{API}/models/net", headers=served.headers(READER), params={"version": "#prod"}
    ).json()
    assert prod["version"] == "v0.1.2" and prod["stages"] == ["prod"]
    assert leftovers(repo) == []


def test_a_download_has_its_sha256_as_etag_and_answers_ranges(served, tmp_path):  # type: ignore[no-untyped-def]
    original = (tmp_path / "net.safetensors").read_bytes()
    whole = httpx.get(
        f"{served.url}{API}/artifacts/net@v0.1.0/download", headers=served.headers(READER)
    )
    assert whole.content == original
    assert whole.headers["etag"] == f'"{hashlib.sha256(original).hexdigest()}"'
    assert int(whole.headers["content-length"]) == len(original)
    part = httpx.get(
        f"{served.url}{API}/artifacts/net/download",
        headers={**served.headers(READER), "Range": "bytes=100-199"},
    )
    assert part.status_code == 206 and part.content == original[100:200]


def test_rows_come_as_an_arrow_stream_sliced_projected_and_filtered(served):  # type: ignore[no-untyped-def]
    url = f"{served.url}{API}/artifacts/table/rows"
    every = pa.ipc.open_stream(httpx.get(url, headers=served.headers(READER)).content).read_all()
    assert every.num_rows == 1000 and every.column("id").to_pylist() == list(range(1000))
    params = {"columns": "id,score", "offset": "10", "limit": "16"}
    part = pa.ipc.open_stream(
        httpx.get(url, headers=served.headers(READER), params=params).content
    ).read_all()
    assert part.column_names == ["id", "score"] and part.column("id").to_pylist() == list(
        range(10, 26)
    )
    chosen = pa.ipc.open_stream(
        httpx.get(url, headers=served.headers(READER), params={"filter": "id >= 990"}).content
    ).read_all()
    assert chosen.column("id").to_pylist() == list(range(990, 1000))


def test_unknown_names_are_404_with_a_json_error_and_hint(served):  # type: ignore[no-untyped-def]
    for path in ("/models/nothing", "/artifacts/nothing", "/models/net?version=v9.9.9"):
        answer = httpx.get(f"{served.url}{API}{path}", headers=served.headers(READER))
        assert answer.status_code == 404, path
        assert set(answer.json()) == {"error", "hint"} and answer.json()["error"]


def test_missing_or_bad_tokens_are_401_and_a_read_token_writing_is_403(served, tmp_path):  # type: ignore[no-untyped-def]
    model = make_safetensors(tmp_path / "m.safetensors", 5)
    assert upload(served, "net", model, token=None).status_code == 401
    assert upload(served, "net", model, token="x" * 24).status_code == 401
    refused = upload(served, "net", model, token=READER)
    assert (
        refused.status_code == 403 and refused.json()["error"] == "the token of 'bob' may only read"
    )
    assert WRITER not in served.log.read_text() and READER not in served.log.read_text()


def test_malformed_json_is_422_and_changes_nothing(served, repo):  # type: ignore[no-untyped-def]
    before = tags(repo)
    answer = httpx.post(
        f"{served.url}{API}/models/net/stages",
        headers={**served.headers(), "content-type": "application/json"},
        content=b'{"version": ',
    )
    assert answer.status_code == 422 and "JSON" in answer.json()["error"]
    bad_metadata = upload(
        served, "net", make_safetensors(repo.parent / "x.safetensors"), metadata="{nope"
    )
    assert (
        bad_metadata.status_code == 422 and "metadata is not JSON" in bad_metadata.json()["error"]
    )
    assert tags(repo) == before and leftovers(repo) == []


def test_an_oversized_upload_is_413_and_leaves_nothing(repo, run, tmp_path, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MREG_SERVER_MAX_UPLOAD", "4096")
    model = make_safetensors(tmp_path / "big.safetensors", width=64)
    with mreg_serve(repo) as server:
        answer = upload(server, "net", model)
    assert answer.status_code == 413 and "limit of 4,096 bytes" in answer.json()["error"]
    assert tags(repo) == [] and leftovers(repo) == []


def test_a_malicious_pickle_is_refused_nothing_runs_and_nothing_is_committed(
    served, repo, tmp_path
):  # type: ignore[no-untyped-def]
    import torch

    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.ones(2), "payload": Marker(marker)}, evil)
    before, head = tags(repo), git(repo, "rev-parse", "HEAD")
    answer = upload(served, "net", evil)
    assert answer.status_code == 422, answer.text
    assert not marker.exists()
    assert tags(repo) == before and git(repo, "rev-parse", "HEAD") == head
    assert git(repo, "status", "--porcelain") == "" and leftovers(repo) == []


@pytest.mark.parametrize(
    "path",
    [
        "/artifacts/..%2Fsecret",
        "/artifacts/%2Fetc%2Fpasswd/download",
        "/artifacts/a%2F..%2F..%2Fb/rows",
    ],
)
def test_names_that_climb_out_or_are_absolute_are_refused(served, path):  # type: ignore[no-untyped-def]
    answer = httpx.get(f"{served.url}{API}{path}", headers=served.headers(READER))
    assert answer.status_code in (400, 422) and "not a valid" in answer.json()["error"]


def test_an_upload_whose_file_name_climbs_out_is_refused(served, repo, tmp_path):  # type: ignore[no-untyped-def]
    model = make_safetensors(tmp_path / "m.safetensors")
    answer = httpx.post(
        f"{served.url}{API}/models/net/versions",
        headers=served.headers(),
        files={"file": ("../../escape.safetensors", model.read_bytes())},
    )
    assert answer.status_code == 400 and "not a valid file name" in answer.json()["error"]
    assert not (repo.parent / "escape.safetensors").exists() and leftovers(repo) == []


def test_eight_clients_registering_one_model_at_once_get_eight_versions(
    served, repo, run, tmp_path
):  # type: ignore[no-untyped-def]
    models = [make_safetensors(tmp_path / f"c{i}.safetensors", 10 + i) for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda m: upload(served, "net", m), models))
    assert sorted(a.status_code for a in answers) == [201] * 8
    versions = {a.json()["version"] for a in answers}
    assert versions == {f"v0.1.{i}" for i in range(1, 9)}
    subprocess.run(["git", "fsck", "--strict"], cwd=repo, check=True, capture_output=True)
    result = run("validate")
    assert result.exit_code == 0, result.stderr


def test_a_client_killed_mid_upload_leaves_nothing_committed_and_no_temp_files(served, repo):  # type: ignore[no-untyped-def]
    before = tags(repo)
    host, port = served.url.removeprefix("http://").split(":")
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="m.safetensors"\r\n\r\n'
    with socket.create_connection((host, int(port))) as sock:
        head = (
            f"POST {API}/models/net/versions HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {WRITER}\r\n"
            f"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 10000000\r\n\r\n"
        )
        sock.sendall(head.encode() + body + b"\0" * 100_000)
        time.sleep(0.5)
        assert leftovers(repo), "the upload lands in .mreg/tmp while it arrives"
    deadline = time.monotonic() + 10
    while leftovers(repo) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert leftovers(repo) == [] and tags(repo) == before
    assert httpx.get(f"{served.url}{API}/health").status_code == 200


def test_the_seed_s_paths_answer_as_their_api_v1_twins(served, tmp_path):  # type: ignore[no-untyped-def]
    seed = f"{served.url}/model-registry"
    assert (
        httpx.get(f"{seed}/models", headers=served.headers(READER)).json()
        == httpx.get(f"{served.url}{API}/models", headers=served.headers(READER)).json()
    )
    assert (
        httpx.get(f"{seed}/models/net", headers=served.headers(READER)).json()["version"]
        == "v0.1.0"
    )
    assert httpx.get(f"{seed}/stats", headers=served.headers(READER)).json()["versions"] == 1
    assert (
        httpx.get(
            f"{seed}/validate", headers=served.headers(READER), params={"load": "false"}
        ).json()["errors"]
        == []
    )
    original = (tmp_path / "net.safetensors").read_bytes()
    assert (
        httpx.get(f"{seed}/models/net/download", headers=served.headers(READER)).content == original
    )
    model = make_safetensors(tmp_path / "s.safetensors", 7)
    with open(model, "rb") as f:
        answer = httpx.post(
            f"{seed}/models/upload",
            params={"name": "net"},
            headers=served.headers(),
            files={"file": ("s.safetensors", f)},
        )
    assert answer.status_code == 201 and answer.json()["version"] == "v0.1.1"
    gone = httpx.delete(
        f"{seed}/models/net", params={"version": "v0.1.1"}, headers=served.headers()
    )
    assert gone.json() == {"tags": ["net@v0.1.1!"]}
