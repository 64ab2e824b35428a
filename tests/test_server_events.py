"""Events over WebSocket and jobs awaited by id, against a real ``mreg serve``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import websockets
from helpers import make_safetensors
from serve_helpers import READER, WRITER, mreg_serve

API = "/api/v1"


async def _events_during(url: str, action, count: int) -> list[dict]:  # type: ignore[no-untyped-def]
    socket_url = url.replace("http://", "ws://") + f"{API}/events"
    headers = {"Authorization": f"Bearer {READER}"}
    async with websockets.connect(socket_url, additional_headers=headers) as socket:
        await asyncio.sleep(0.2)
        await asyncio.to_thread(action)
        return [json.loads(await asyncio.wait_for(socket.recv(), 30)) for _ in range(count)]


def test_a_registration_and_a_stage_move_are_announced_to_subscribers(repo: Path, tmp_path: Path):
    model = make_safetensors(tmp_path / "m.safetensors")
    auth = {"Authorization": f"Bearer {WRITER}"}
    with mreg_serve(repo) as server:

        def act() -> None:
            with open(model, "rb") as f:
                answer = httpx.post(f"{server.url}{API}/models/net/versions", headers=auth,
                                    files={"file": ("m.safetensors", f)}, timeout=60)  # fmt: skip
            assert answer.status_code == 201, answer.text
            body = {"version": "v0.1.0", "stage": "prod"}
            httpx.post(f"{server.url}{API}/models/net/stages", headers=auth, json=body)

        events = asyncio.run(_events_during(server.url, act, 2))
    assert events[0]["event"] == "version_registered" and events[0]["tag"] == "net@v0.1.0"
    assert events[0]["author"] == "alice"
    assert events[1]["event"] == "stage_changed" and events[1]["tag"] == "net#prod#1"


def test_a_validate_job_reports_progress_and_can_be_awaited_by_id(repo: Path, run, tmp_path):  # type: ignore[no-untyped-def]
    assert (
        run("register", make_safetensors(tmp_path / "m.safetensors"), "--name", "net").exit_code
        == 0
    )
    auth = {"Authorization": f"Bearer {READER}"}
    with mreg_serve(repo) as server:
        started: dict = {}

        def act() -> None:
            answer = httpx.post(f"{server.url}{API}/jobs/validate", headers=auth)
            started.update(answer.json())

        events = asyncio.run(_events_during(server.url, act, 2))
        done = httpx.get(f"{server.url}{API}/jobs/{started['id']}", headers=auth,
                         params={"wait": 30}, timeout=60).json()  # fmt: skip
    assert started["state"] == "running"
    assert {e["event"] for e in events} <= {"job_progress", "job_finished"}
    assert all(e["job"] == started["id"] for e in events)
    assert done["state"] == "done" and done["result"]["valid_versions"] == 1


def test_a_subscriber_without_a_token_is_turned_away(repo: Path):
    async def connect(url: str) -> None:
        async with websockets.connect(url.replace("http://", "ws://") + f"{API}/events") as s:
            await s.recv()

    with mreg_serve(repo) as server:
        try:
            asyncio.run(connect(server.url))
            raise AssertionError("connected without a token")
        except websockets.exceptions.WebSocketException as error:
            assert "4401" in str(error) or "403" in str(error)


def test_writes_over_grpc_are_announced_to_websocket_subscribers_too(repo: Path, tmp_path: Path):
    import mreg

    model = make_safetensors(tmp_path / "m.safetensors")
    with mreg_serve(repo, grpc=True) as server:
        assert server.grpc_url is not None

        def act() -> None:
            with mreg.Client(str(server.grpc_url), WRITER) as client:
                client.register_model("net", model)
                client.stage("net", "v0.1.0", "prod")

        events = asyncio.run(_events_during(server.url, act, 2))
    assert events[0]["event"] == "version_registered" and events[0]["author"] == "alice"
    assert events[1]["event"] == "stage_changed" and events[1]["tag"] == "net#prod#1"


def test_a_push_that_fails_after_a_registration_is_announced_and_the_version_kept(
    repo: Path, run, tmp_path: Path
) -> None:
    # A default remote nothing listens on: the version is committed, its push fails.
    unreachable = ["--endpoint-url", "http://127.0.0.1:9", "--region", "us-east-1"]
    added = run("remote", "add", "origin", "s3://nowhere/x", "--default", *unreachable)
    assert added.exit_code == 0, added.stderr
    model = make_safetensors(tmp_path / "m.safetensors")
    auth = {"Authorization": f"Bearer {WRITER}"}
    with mreg_serve(repo) as server:
        answers: list[httpx.Response] = []

        def act() -> None:
            with open(model, "rb") as f:
                url = f"{server.url}{API}/models/net/versions"
                files = {"file": ("m.safetensors", f)}
                answers.append(httpx.post(url, headers=auth, files=files, timeout=120))

        events = asyncio.run(_events_during(server.url, act, 2))
    assert answers[0].status_code == 201, answers[0].text
    assert [e["event"] for e in events] == ["push_failed", "version_registered"]
    assert events[0]["target"] == "net@v0.1.0" and events[0]["error"]
