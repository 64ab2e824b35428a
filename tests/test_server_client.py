"""``mreg.Client`` over HTTP against a real ``mreg serve``: the same answers as the local API."""

from __future__ import annotations

import hashlib
import os
import tarfile
import threading
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from helpers import commit_all, make_safetensors, make_table
from serve_helpers import WRITER, mreg_serve

import mreg
from mreg.client import HttpClient, ServerError, ranged
from mreg.errors import ModelNotFound


@pytest.fixture
def served(repo: Path, run, tmp_path: Path):  # type: ignore[no-untyped-def]
    make_table(repo / "table.parquet", rows=1000)
    assert run("add", "table.parquet").exit_code == 0
    commit_all(repo, "table")
    with mreg_serve(repo, grpc=True) as server:
        yield server


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_the_contract_scenario_gives_the_local_api_s_answers(served, repo, tmp_path, transport):  # type: ignore[no-untyped-def]
    client = mreg.Client(served.url if transport == "http" else served.grpc_url, token=WRITER)
    for seed in (1, 2, 3):
        model = make_safetensors(tmp_path / f"m{seed}.safetensors", seed)
        entry = client.register_model("net", model, performance_metrics={"accuracy": seed / 10})
        assert entry.version == f"v0.1.{seed - 1}"
    assert client.stage("net", "v0.1.1", "prod") == "net#prod#1"
    local = mreg.ModelRegistry(repo)
    assert client.search("accuracy>=0.2") == local.search("accuracy>=0.2")
    assert client.get_model_info("net", "#prod") == local.get_model_info("net", "#prod")
    assert client.list_models() == local.list_models()
    assert client.models() == local.models()
    assert client.stats() == local.stats()
    assert client.validate_registry(load=False) == local.validate_registry(load=False)
    got = client.download("net@v0.1.1", tmp_path / "out.safetensors")
    original = (tmp_path / "m2.safetensors").read_bytes()
    assert hashlib.sha256(got.read_bytes()).hexdigest() == hashlib.sha256(original).hexdigest()
    rows = pa.Table.from_batches(client.open("table", limit=1000))
    assert rows.equals(mreg.open("table", repo=repo).to_table())
    loaded, _ = client.load_model("net", "#prod")
    expected, _ = local.load_model("net", "#prod")
    assert loaded.keys() == expected.keys()
    assert all(torch.equal(loaded[k], expected[k]) for k in expected)
    assert client.remove_versions("net", "v0.1.0") == ["net@v0.1.0!"]
    assert client.remove_model("net", "v0.1.0") is False  # removed already, as locally
    assert client.get_model_info("net", "v0.1.0") is None


def test_the_engine_switch_gives_a_client_backed_registry(served, monkeypatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("MREG_SERVER_TOKEN", WRITER)
    registry = mreg.ModelRegistry(engine="remote", url=served.url)
    assert isinstance(registry, HttpClient) and registry.models() == []
    monkeypatch.setenv("MREG_SERVER_URL", served.url)
    assert isinstance(mreg.ModelRegistry(), HttpClient)


def test_a_client_error_carries_the_server_s_message_and_status(served):  # type: ignore[no-untyped-def]
    client = mreg.Client(served.url, token=WRITER)
    assert client.get_model_info("ghost") is None  # as the local registry answers
    with pytest.raises(ModelNotFound, match="no model named 'ghost' is registered"):
        client.entry("ghost")
    with pytest.raises(ServerError, match="token") as caught:
        mreg.Client(served.url, token="wrong").register_model("net", served.log)
    assert caught.value.status == 401


def test_a_download_cut_by_a_killed_server_fails_clearly_then_resumes_the_missing_blocks(
    repo, run, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    model = make_safetensors(tmp_path / "big.safetensors", layers=8, width=1024)  # 32 MiB
    assert run("register", model, "--name", "big").exit_code == 0
    monkeypatch.setattr(ranged, "BLOCK", 4 << 20)  # 8 blocks and a bit
    target = tmp_path / "got.safetensors"
    original = ranged._block
    fetched: list[int] = []

    def recorded(http, url, fd, index, bounds, mark):  # type: ignore[no-untyped-def]
        original(http, url, fd, index, bounds, mark)
        fetched.append(index)

    monkeypatch.setattr(ranged, "_block", recorded)
    with mreg_serve(repo) as server:
        finished = threading.Event()

        def dying(http, url, fd, index, bounds, mark):  # type: ignore[no-untyped-def]
            if index == 0:
                recorded(http, url, fd, index, bounds, mark)  # this block arrives whole
                finished.set()
                return
            finished.wait(30)
            server.kill()  # the others are cut
            recorded(http, url, fd, index, bounds, mark)

        monkeypatch.setattr(ranged, "_block", dying)
        with pytest.raises(mreg.RemoteError, match=r"stopped.*resumes"):
            HttpClient(server.url, WRITER).download("big", target)
    assert not target.exists()
    kept = [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]
    assert kept, "the blocks received so far stay for the resume"
    monkeypatch.setattr(ranged, "_block", recorded)
    fetched.clear()
    with mreg_serve(repo) as server:
        got = HttpClient(server.url, WRITER).download("big", target)
    assert got.read_bytes() == model.read_bytes()
    assert 0 not in fetched and len(fetched) == model.stat().st_size // (4 << 20)
    assert not [p for p in tmp_path.iterdir() if ".partial" in p.name]


def test_the_cli_reads_models_and_pulls_a_version_from_a_server_without_a_clone(
    served, run, tmp_path, monkeypatch
):  # type: ignore[no-untyped-def]
    model = make_safetensors(tmp_path / "m.safetensors", 3)
    mreg.Client(served.url, token=WRITER).register_model("net", model)
    elsewhere = tmp_path / "no-clone"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("MREG_SERVER_TOKEN", WRITER)
    monkeypatch.setenv("MREG_SERVER_URL", "")  # --server sets it in this process: undone after
    listed = run("--server", served.url, "models", "--json")
    assert listed.exit_code == 0, listed.stderr
    assert '"latest": "v0.1.0"' in listed.stdout
    pulled = run("--server", served.url, "pull", "net@v0.1.0")
    assert pulled.exit_code == 0, pulled.stderr
    assert (elsewhere / "model.safetensors").read_bytes() == model.read_bytes()


@pytest.mark.parametrize("transport", ["http", "grpc"])
def test_a_classifier_exported_to_onnx_by_the_server_answers_a_batch_of_16_as_torch_does(
    repo, tmp_path, monkeypatch, transport
):  # type: ignore[no-untyped-def]
    import numpy as np
    import onnxruntime
    from registry_models import TinyClassifier, predict

    # The server builds the class of the registered model: it trusts the tests' models.
    monkeypatch.setenv("MREG_TRUSTED_MODULES", "registry_models")
    tests = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")]))
    torch.manual_seed(0)
    model = TinyClassifier(features=64).eval()
    mreg.ModelRegistry(repo).register_model(
        "clf", model, "pytorch", "classification",
        init_kwargs={"features": 64, "hidden": 8, "classes": 3}, input_shape=[64],
    )  # fmt: skip
    with mreg_serve(repo, grpc=True) as server:
        client = mreg.Client(server.url if transport == "http" else server.grpc_url, WRITER)
        path = client.export_model("clf", "latest", tmp_path / "clf.onnx", "onnx")
    onnx = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x = torch.randn(16, 64, generator=torch.Generator().manual_seed(16))
    (got,) = onnx.run(None, {onnx.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, predict(model, x).numpy(), atol=1e-5)


def test_a_folder_downloads_as_one_tar_of_its_files_alike_over_rest_and_grpc(repo, run, tmp_path):  # type: ignore[no-untyped-def]
    folder = repo / "bundle"
    (folder / "nested").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(os.urandom(3 << 20))
    (folder / "nested" / "notes.txt").write_text("trained on the 5th")
    before = {
        p.relative_to(repo).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }
    assert run("add", "bundle", "--format", "blob_dir").exit_code == 0
    commit_all(repo, "bundle")
    with mreg_serve(repo, grpc=True) as server:
        over_rest = HttpClient(server.url, WRITER).download("bundle", tmp_path)
        assert server.grpc_url is not None
        with mreg.Client(server.grpc_url, WRITER) as client:
            over_grpc = client.download("bundle", tmp_path / "grpc.tar")
    assert over_rest.name == "bundle.tar"
    assert over_rest.read_bytes() == over_grpc.read_bytes()
    with tarfile.open(over_rest) as archive:
        members = archive.getmembers()
        unpacked = {m.name: archive.extractfile(m).read() for m in members if m.isfile()}  # type: ignore[union-attr]
    assert unpacked == before  # one folder, named as the artifact, holding its files
