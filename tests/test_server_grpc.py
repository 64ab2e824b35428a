"""``mreg.v1.Registry`` over gRPC: a real server subprocess (``python -m mreg.server.grpc_service``)
on a loopback port, reached through ``GrpcClient`` and raw grpcio stubs."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import grpc
import numpy as np
import pyarrow as pa
import pytest
import torch
from grpc_server_helpers import READ_TOKEN, WORKTREE, WRITE_TOKEN, grpc_server
from helpers import commit_all, git, make_table

import mreg
from mreg.client.grpc_client import GrpcClient, ServerError
from mreg.errors import ModelNotFound, RegistryError
from mreg.protocol import mreg_pb2, mreg_pb2_grpc
from mreg.registry import ModelRegistry

LINEAR = {"in_features": 8, "out_features": 4}
READ_METADATA = (("authorization", f"Bearer {READ_TOKEN}"),)


def linear(seed: int) -> torch.nn.Linear:
    torch.manual_seed(seed)
    return torch.nn.Linear(**LINEAR)


def register(client: GrpcClient, seed: int, **fields: object) -> mreg.ModelEntry:
    return client.register_model(
        "net", linear(seed), init_kwargs=LINEAR, input_shape=[8], tags=["cv"], **fields
    )


def history(root: Path) -> tuple[str, str]:
    """HEAD and every tag: what a refused write must leave as it was."""
    return git(root, "rev-parse", "HEAD"), git(root, "tag", "--list")


def leftovers(root: Path) -> list[str]:
    tmp = root / ".mreg" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


@pytest.fixture
def served(repo: Path, remote_dir: Path) -> Path:
    """A repository with one committed dataset of 2,000 rows and a default remote."""
    make_table(repo / "table.parquet", rows=2000)
    assert mreg.Repo(repo).add(repo / "table.parquet") is not None
    commit_all(repo, "Track the table")
    return repo


def stub(url: str) -> tuple[grpc.Channel, mreg_pb2_grpc.RegistryStub]:
    channel = grpc.insecure_channel(url.removeprefix("grpc://"))
    return channel, mreg_pb2_grpc.RegistryStub(channel)


# -- the contract scenario --------------------------------------------------------------------


def test_the_registry_scenario_over_grpc_gives_what_the_local_registry_gives(
    served: Path, remote_dir: Path, tmp_path: Path
) -> None:
    with grpc_server(served, tmp_path) as server, GrpcClient(server.url, WRITE_TOKEN) as client:
        entries = [
            register(client, seed, performance_metrics={"acc": 0.8 + seed / 10})
            for seed in range(3)
        ]
        assert [e.tag for e in entries] == ["net@v0.1.0", "net@v0.1.1", "net@v0.1.2"]
        assert client.stage("net", "v0.1.1", "prod") == "net#prod#1"

        local = ModelRegistry(served)
        assert client.search("stage:prod acc>=0.85") == local.search("stage:prod acc>=0.85")
        assert [e.version for e in client.search("stage:prod")] == ["v0.1.1"]
        assert client.list_models() == local.list_models()
        assert client.get_model_info("net", "prod") == local.get_model_info("net", "prod")

        remote_model, _ = client.load_model("net", "prod")
        local_model, _ = local.load_model("net", "prod")
        batch = torch.randn(16, 8)
        assert torch.equal(remote_model(batch), local_model(batch))
        assert torch.equal(remote_model(batch), linear(1).eval()(batch))

        downloaded = client.download("net@v0.1.1", tmp_path / "out" / "net.safetensors")
        _, manifest = mreg.Repo(served).lookup("net", "net@v0.1.1") or (None, None)
        assert manifest is not None
        assert hashlib.sha256(downloaded.read_bytes()).hexdigest() == manifest.source.sha256

        rows = pa.Table.from_batches(list(client.open("table", limit=1000)))
        assert rows.num_rows == 1000
        assert rows == mreg.open("table", repo=served).to_table(limit=1000)
        sliced = pa.Table.from_batches(
            list(client.open("table", columns=["id"], filter="id >= 1500", offset=10, limit=16))
        )
        assert sliced.column("id").to_pylist() == list(range(1510, 1526))

        exported = client.export_model("net", "prod", tmp_path / "net.onnx", "onnx")
        import onnxruntime

        session = onnxruntime.InferenceSession(str(exported))
        name = session.get_inputs()[0].name
        (onnx_out,) = session.run(None, {name: batch.numpy()})
        np.testing.assert_allclose(onnx_out, local_model(batch).detach().numpy(), atol=1e-5)

        stats = client.stats()
        assert (stats.models, stats.versions) == (1, 3)

    # Each write is a commit by the caller and a tag; the data went to the default remote.
    author = git(served, "log", "-1", "--format=%an", "net@v0.1.2").strip()
    assert author == "alice"
    assert any(remote_dir.rglob("*.lance")) or any(p.is_file() for p in remote_dir.rglob("*"))
    assert mreg.Repo(served).status(remote="origin") is not None


def test_eight_clients_registering_one_model_at_once_get_eight_versions(
    served: Path, tmp_path: Path, run
) -> None:  # type: ignore[no-untyped-def]
    found: list[str] = []
    errors: list[BaseException] = []

    def one(seed: int) -> None:
        try:
            with GrpcClient(server.url, WRITE_TOKEN) as client:
                found.append(register(client, seed).tag)
        except BaseException as error:
            errors.append(error)

    with grpc_server(served, tmp_path) as server:
        threads = [threading.Thread(target=one, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert errors == []
    assert sorted(found) == [f"net@v0.1.{i}" for i in range(8)]
    assert sorted(git(served, "tag", "--list", "net@*").split()) == sorted(found)
    subprocess.run(["git", "fsck", "--strict"], cwd=served, check=True, capture_output=True)
    assert run("validate").exit_code == 0


# -- bad input ----------------------------------------------------------------------------------


def test_an_unknown_name_is_not_found(served: Path, tmp_path: Path) -> None:
    with grpc_server(served, tmp_path) as server, GrpcClient(server.url, READ_TOKEN) as client:
        assert client.get_model_info("ghost") is None  # as the local registry answers
        with pytest.raises(ModelNotFound, match="no model named 'ghost' is registered"):
            client.entry("ghost")
        with pytest.raises(ModelNotFound, match="no artifact named 'ghost'"):
            client.download("ghost", tmp_path / "ghost.bin")
        channel, raw = stub(server.url)
        with channel, pytest.raises(grpc.RpcError) as caught:
            raw.GetModelInfo(mreg_pb2.ModelRequest(name="ghost"), metadata=READ_METADATA)
        assert caught.value.code() == grpc.StatusCode.NOT_FOUND
        assert "\n" not in caught.value.details()
    assert sorted(p.name for p in tmp_path.iterdir() if "ghost" in p.name) == []


def test_a_missing_or_wrong_token_is_unauthenticated_and_a_read_token_may_not_write(
    served: Path, tmp_path: Path
) -> None:
    before = history(served)
    with grpc_server(served, tmp_path) as server:
        channel, raw = stub(server.url)
        with channel:
            for metadata in [(), (("authorization", "Bearer not-a-token-at-all"),)]:
                with pytest.raises(grpc.RpcError) as caught:
                    raw.ListModels(mreg_pb2.ListModelsRequest(), metadata=metadata)
                assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "not-a-token" not in caught.value.details()
        with GrpcClient(server.url, READ_TOKEN) as reader:
            assert reader.list_models() == []
            assert reader.info()["caller"] == "bob"
            with pytest.raises(ServerError, match="the token of 'bob' may only read") as refused:
                register(reader, 0)
            assert refused.value.code == "PERMISSION_DENIED"
    assert history(served) == before
    assert leftovers(served) == []


def test_an_upload_over_the_size_limit_is_refused_before_its_bytes(
    served: Path, tmp_path: Path
) -> None:
    big = tmp_path / "big.safetensors"
    from safetensors.numpy import save_file

    save_file({"w": np.zeros((1024, 600), np.float32)}, str(big))  # 2.4 MB
    before = history(served)
    with (
        grpc_server(served, tmp_path, "--max-upload-mb", "1") as server,
        GrpcClient(server.url, WRITE_TOKEN) as client,
        pytest.raises(ServerError, match="this server takes at most 1,048,576") as refused,
    ):
        client.register_model("big", big)
    assert refused.value.code == "RESOURCE_EXHAUSTED"
    assert history(served) == before
    assert leftovers(served) == []


def test_a_malicious_pickle_upload_is_refused_and_never_run(served: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pth"
    torch.save({"weight": Exploit()}, evil)  # a real checkpoint whose pickle runs a command
    before = history(served)
    with (
        grpc_server(served, tmp_path) as server,
        GrpcClient(server.url, WRITE_TOKEN) as client,
        pytest.raises(RegistryError, match="not a PyTorch checkpoint: Weights only load failed"),
    ):
        client.register_model("evil", evil)
    assert not marker.exists()
    assert history(served) == before
    assert leftovers(served) == []
    assert not (served / "models" / "evil").exists()


def test_a_name_that_climbs_out_is_an_invalid_argument(served: Path, tmp_path: Path) -> None:
    weights = tmp_path / "w.safetensors"
    from safetensors.torch import save_file

    save_file(linear(0).state_dict(), str(weights))
    before = history(served)
    with grpc_server(served, tmp_path) as server, GrpcClient(server.url, WRITE_TOKEN) as client:
        with pytest.raises(RegistryError, match=r"'\.\./x' is not a valid artifact name"):
            client.register_model("../x", weights)
        with pytest.raises(RegistryError, match="not a valid artifact name"):
            client.download("../../etc/passwd", tmp_path / "passwd")
        with pytest.raises(RegistryError, match="not a valid artifact name"):
            list(client.open("/etc/passwd"))
    assert history(served) == before
    assert not (served.parent / "x").exists()


def test_a_client_killed_mid_upload_leaves_nothing_committed_and_no_temporary_files(
    served: Path, tmp_path: Path
) -> None:
    before = history(served)
    script = textwrap.dedent(
        f"""
        import os, sys, time
        sys.path.insert(0, {str(WORKTREE)!r})
        import grpc
        from mreg.protocol import mreg_pb2 as pb, mreg_pb2_grpc

        def messages():
            file = pb.UploadFile(path="model.safetensors", size=50 << 20)
            header = pb.UploadHeader(name="half", files=[file])
            yield pb.UploadMessage(header=header)
            for _ in range(8):
                yield pb.UploadMessage(chunk=b"x" * (1 << 20))
            print("sent", flush=True)
            time.sleep(0.5)
            os.kill(os.getpid(), 9)

        channel = grpc.insecure_channel(sys.argv[1])
        stub = mreg_pb2_grpc.RegistryStub(channel)
        stub.Register(messages(), metadata=[("authorization", "Bearer {WRITE_TOKEN}")])
        """
    )
    with grpc_server(served, tmp_path) as server:
        address = server.url.removeprefix("grpc://")
        done = subprocess.run(
            [sys.executable, "-c", script, address], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == -9 and "sent" in done.stdout
        deadline = time.monotonic() + 15
        while leftovers(served) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert leftovers(served) == []
        with GrpcClient(server.url, READ_TOKEN) as client:
            assert client.list_models() == []
    assert history(served) == before


def test_a_download_cut_by_the_server_dying_fails_clearly_and_a_rerun_resumes(
    served: Path, tmp_path: Path
) -> None:
    from safetensors.torch import save_file

    weights = tmp_path / "big.safetensors"
    torch.manual_seed(0)
    save_file({f"layer{i}.weight": torch.randn(1024, 1024) for i in range(12)}, str(weights))
    target = tmp_path / "out" / "big.safetensors"
    seen: list[int] = []
    with grpc_server(served, tmp_path) as server:
        with GrpcClient(server.url, WRITE_TOKEN) as client:
            client.register_model("big", weights)

        def kill_the_server(done: int, size: int) -> None:
            if not seen:
                server.process.kill()
                server.process.wait()
            seen.append(done)

        with (
            GrpcClient(server.url, READ_TOKEN) as client,
            pytest.raises(ServerError, match="bytes received and kept") as broken,
        ):
            client.download("big@v0.1.0", target, progress=kill_the_server)
    assert broken.value.code == "UNAVAILABLE"
    assert "run the download again" in str(broken.value)
    assert not target.exists()
    kept = target.parent / ".big.safetensors.mreg-partial"
    received = kept.stat().st_size
    assert 0 < received < weights.stat().st_size

    resumed: list[int] = []
    with grpc_server(served, tmp_path) as server, GrpcClient(server.url, READ_TOKEN) as client:
        client.download("big@v0.1.0", target, progress=lambda done, size: resumed.append(done))
    assert resumed[0] > received  # the first chunk of the re-run came after the kept bytes
    assert target.read_bytes() == weights.read_bytes()
    assert not kept.exists()
