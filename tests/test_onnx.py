"""ONNX models: initializers become tensor rows, the graph a side-file row, and checkout gives a
self-contained file that onnxruntime runs with the outputs of the original."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import onnx
import pytest
from helpers import assert_refused, commit_all, manifest_path, snapshot
from onnx import TensorProto, helper, numpy_helper

from mreg.converters.base import ReadOptions
from mreg.converters.onnx_model import CONVERTER, GRAPH_ROW

WEIGHT = np.arange(12, dtype=np.float32).reshape(4, 3) / 7
BIAS = [0.5, -1.0, 2.0]


def make_graph_model(initializers: list[TensorProto]) -> onnx.ModelProto:
    """y = x @ W + B with x of shape [batch, 4]: the smallest model with real weights."""
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Add", ["h", "B"], ["y"])],
        "affine",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])


def make_onnx(path: Path) -> Path:
    # W is kept as raw_data, B in the typed float_data field: both ways ONNX stores values.
    weight = numpy_helper.from_array(WEIGHT, "W")
    bias = helper.make_tensor("B", TensorProto.FLOAT, [3], BIAS)
    onnx.save_model(make_graph_model([weight, bias]), path)
    return path


def external_tensor(name: str, dims: list[int], location: str, offset: int) -> TensorProto:
    """An initializer whose float32 values live in ``location``, written out by hand."""
    tensor = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=dims)
    tensor.data_location = TensorProto.EXTERNAL
    length = 4 * int(np.prod(dims))
    for key, value in (("location", location), ("offset", offset), ("length", length)):
        entry = tensor.external_data.add()
        entry.key, entry.value = key, str(value)
    return tensor


def make_onnx_pointing_to(path: Path, location: str) -> Path:
    tensors = [external_tensor("W", [4, 3], location, 0), external_tensor("B", [3], location, 48)]
    onnx.save_model(make_graph_model(tensors), path)
    return path


def save_with_external_data(path: Path) -> Path:
    """The MatMul+Add model with its initializers in ``weights.bin`` beside it."""
    weight = numpy_helper.from_array(WEIGHT, "W")
    bias = numpy_helper.from_array(np.array(BIAS, dtype=np.float32), "B")
    onnx.save_model(
        make_graph_model([weight, bias]),
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location="weights.bin",
        size_threshold=0,
    )
    return path


def weights_bytes() -> bytes:
    return WEIGHT.tobytes() + np.array(BIAS, dtype=np.float32).tobytes()


def outputs(path: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def checkout_again(repo: Path, run, artifact: str) -> None:  # type: ignore[no-untyped-def]
    (repo / artifact).unlink()
    result = run("checkout")
    assert result.exit_code == 0, result.stderr


def manifest_of(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(manifest_path(path).read_text())


X = np.random.default_rng(0).standard_normal((5, 4), dtype=np.float32)


def test_an_onnx_model_runs_with_equal_outputs_after_add_delete_and_checkout(repo, run):
    path = make_onnx(repo / "affine.onnx")
    expected = outputs(path, X)
    assert run("add", "affine.onnx").exit_code == 0
    assert manifest_of(path)["source"]["restore"] == "equivalent"

    checkout_again(repo, run, "affine.onnx")

    np.testing.assert_array_equal(outputs(path, X), expected)
    onnx.checker.check_model(onnx.load(str(path)))


def test_the_manifest_lists_the_initializers_with_shapes_and_dtypes_and_the_graph_as_a_file(
    repo, run
):
    path = make_onnx(repo / "affine.onnx")
    assert run("add", "affine.onnx").exit_code == 0
    model = manifest_of(path)["model"]

    tensors = {t["name"]: (t["shape"], t["dtype"]) for t in model["tensors"]}
    assert tensors == {"W": ([4, 3], "float32"), "B": ([3], "float32")}
    assert [f["path"] for f in model["files"]] == [GRAPH_ROW]
    assert model["parameters"] == 15
    assert model["dtypes"] == ["float32"]


def test_describe_gives_opset_signature_and_parameter_count(tmp_path):
    source = CONVERTER.read(make_onnx(tmp_path / "affine.onnx"), ReadOptions())

    info = CONVERTER.describe(source)

    assert info["opset"] == "ai.onnx=18"
    assert info["inputs"] == "x: float32[batch, 4]"
    assert info["outputs"] == "y: float32[batch, 3]"
    assert info["parameters"] == "15"


def test_a_model_saved_with_external_data_comes_back_as_one_self_contained_file(repo, run):
    path = save_with_external_data(repo / "ext.onnx")
    assert (repo / "weights.bin").read_bytes() == weights_bytes()
    expected = outputs(path, X)
    assert run("add", "ext.onnx").exit_code == 0

    checkout_again(repo, run, "ext.onnx")
    (repo / "weights.bin").unlink()

    restored = onnx.load(str(path), load_external_data=False)
    assert all(t.data_location == TensorProto.DEFAULT for t in restored.graph.initializer)
    np.testing.assert_array_equal(outputs(path, X), expected)


def test_external_data_count_as_part_of_the_model_for_status_and_re_add(repo, run):
    path = save_with_external_data(repo / "ext.onnx")
    assert run("add", "ext.onnx").exit_code == 0
    assert manifest_of(path)["source"]["companions"] == ["weights.bin"]
    assert "/weights.bin" in (repo / ".gitignore").read_text().splitlines()
    assert "in sync" in run("status").stdout
    commit_all(repo, "model with external data")

    data = bytearray((repo / "weights.bin").read_bytes())
    data[:4] = np.float32(42.0).tobytes()
    (repo / "weights.bin").write_bytes(bytes(data))

    assert "changed in workspace" in run("status").stdout
    result = run("add", "ext.onnx")
    assert result.exit_code == 0
    assert "unchanged" not in result.stdout
    assert "~ tensor W: values changed" in run("diff").stdout
    tensors = {t["name"]: t["digest"] for t in manifest_of(path)["model"]["tensors"]}
    import hashlib

    assert tensors["W"] == hashlib.sha256(bytes(data[: WEIGHT.nbytes])).hexdigest()


def test_external_data_written_by_hand_is_read_from_its_offsets(repo, run):
    path = make_onnx_pointing_to(repo / "hand.onnx", "data/weights.bin")
    (repo / "data").mkdir()
    (repo / "data" / "weights.bin").write_bytes(weights_bytes())
    expected = outputs(path, X)
    assert run("add", "hand.onnx").exit_code == 0

    checkout_again(repo, run, "hand.onnx")

    np.testing.assert_array_equal(outputs(path, X), expected)


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_external_data_outside_the_models_folder_is_refused_before_anything_is_read(
    repo, run, where
):
    secret = repo.parent / "secret.bin"
    secret.write_bytes(weights_bytes())
    location = {"parent": "../secret.bin", "absolute": str(secret), "symlink": "weights.bin"}[where]
    if where == "symlink":
        (repo / "weights.bin").symlink_to(secret)
    make_onnx_pointing_to(repo / "sneaky.onnx", location)
    before = snapshot(repo)

    line = assert_refused(run("add", "sneaky.onnx"), "sneaky.onnx", "tensor 'W'", location)

    assert "refused" in line
    assert snapshot(repo) == before
    assert not (repo / ".mreg" / "cache" / "data").exists()


def test_a_model_over_2_gib_is_refused_before_its_external_data_are_read(repo, run):
    # The claimed length alone decides: the data file itself stays tiny and is never read.
    tensors = [external_tensor("W", [4, 3 << 28], "weights.bin", 0)]
    (repo / "weights.bin").write_bytes(b"tiny")
    onnx.save_model(make_graph_model(tensors), repo / "huge.onnx")
    before = snapshot(repo)

    assert_refused(run("add", "huge.onnx"), "huge.onnx", "12.0 GiB", "limits to 2 GiB")

    assert snapshot(repo) == before


def test_a_model_that_fails_the_onnx_checker_is_refused(repo, run):
    graph = helper.make_graph(
        [helper.make_node("Relu", ["nowhere"], ["y"])],
        "broken",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])],
    )
    broken = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    (repo / "broken.onnx").write_bytes(broken.SerializeToString())
    before = snapshot(repo)

    assert_refused(run("add", "broken.onnx"), "broken.onnx", "fails the ONNX checker")

    assert snapshot(repo) == before


def test_a_file_that_is_not_onnx_is_refused(repo, run):
    (repo / "junk.onnx").write_bytes(b"\xff\x00 certainly not a protobuf message")
    before = snapshot(repo)

    assert_refused(run("add", "junk.onnx"), "junk.onnx", "not an ONNX model")

    assert snapshot(repo) == before


def test_a_torch_module_exported_with_dynamo_round_trips(repo, run):
    import torch

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    module.eval()
    path = repo / "mlp.onnx"
    torch.onnx.export(module, (torch.from_numpy(X),), str(path), dynamo=True, verbose=False)
    expected = outputs(path, X)
    assert run("add", "mlp.onnx").exit_code == 0
    assert manifest_of(path)["model"]["parameters"] == 4 * 8 + 8 + 8 * 2 + 2

    checkout_again(repo, run, "mlp.onnx")

    np.testing.assert_allclose(outputs(path, X), expected, rtol=0, atol=0)
