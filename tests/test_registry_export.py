"""Exporting registered models, validating the registry, and its statistics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_one_line_error
from registry_models import TinyClassifier, predict, toy_data, train

from mreg import ModelRegistry
from mreg.errors import RegistryError, UnsupportedFormat, UsageError

pytestmark = pytest.mark.usefixtures("trusted_test_models")


X, _ = toy_data(seed=1)
KWARGS = {"features": 4, "hidden": 8, "classes": 3}


def register(registry: ModelRegistry, steps: int = 10, **fields: object) -> TinyClassifier:
    model, _ = train(steps)
    registry.register_model("clf", model, "pytorch", "classification", init_kwargs=KWARGS, **fields)
    return model


def test_a_torch_model_exports_to_onnx_with_equal_outputs_in_onnxruntime(
    repo: Path, tmp_path: Path
) -> None:
    import onnxruntime

    registry = ModelRegistry()
    model = register(registry, input_shape=[4])
    path = registry.export_model("clf", "latest", tmp_path / "clf.onnx", "onnx")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    sample = X[:1].numpy()
    (got,) = session.run(None, {session.get_inputs()[0].name: sample})
    np.testing.assert_allclose(got, predict(model, X[:1]).numpy(), atol=1e-5)


def test_onnx_export_takes_an_example_input_or_says_it_needs_one(
    repo: Path, tmp_path: Path
) -> None:
    import onnxruntime

    registry = ModelRegistry()
    model = register(registry)
    with pytest.raises(UsageError, match="needs an example input"):
        registry.export_model("clf", "v0.1.0", tmp_path / "a.onnx", "onnx")
    path = registry.export_model("clf", "v0.1.0", tmp_path / "b.onnx", "onnx", example_input=X[:1])
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: X[:1].numpy()})
    np.testing.assert_allclose(got, predict(model, X[:1]).numpy(), atol=1e-5)


def test_safetensors_and_pth_exports_hold_equal_tensors(repo: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    registry = ModelRegistry()
    model = register(registry)
    path = registry.export_model("clf", "latest", tmp_path / "clf.safetensors", "safetensors")
    loaded = load_file(str(path))
    assert loaded.keys() == model.state_dict().keys()
    for key, tensor in model.state_dict().items():
        assert torch.equal(loaded[key], tensor)
    pth = registry.export_model("clf", "latest", tmp_path / "clf.pth", "pth")
    state = torch.load(pth, weights_only=True)
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_an_onnx_model_exports_as_is(repo: Path, tmp_path: Path) -> None:
    import onnx

    registry = ModelRegistry()
    register(registry, input_shape=[4])
    first = registry.export_model("clf", "latest", tmp_path / "clf.onnx", "onnx")
    registry.register_model("clf-onnx", onnx.load(str(first)), "onnx")
    again = registry.export_model("clf-onnx", "latest", tmp_path / "again.onnx", "onnx")
    assert onnx.load(str(again)) == onnx.load(str(first))
    with pytest.raises(UnsupportedFormat, match="exports to onnx only"):
        registry.export_model("clf-onnx", "latest", tmp_path / "x.safetensors", "safetensors")


def test_export_refuses_unknown_names_versions_and_formats(repo: Path, tmp_path: Path) -> None:
    registry = ModelRegistry()
    register(registry)
    with pytest.raises(RegistryError):
        registry.export_model("nope", "latest", tmp_path / "x.onnx", "onnx")
    with pytest.raises(RegistryError):
        registry.export_model("clf", "v9.9.9", tmp_path / "x.onnx", "onnx")
    with pytest.raises(UsageError, match="unknown export format"):
        registry.export_model("clf", "latest", tmp_path / "x.tf", "tflite")


def test_export_cli_writes_the_file(repo: Path, tmp_path: Path, run) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry()
    model = register(registry)
    out = tmp_path / "cli.safetensors"
    result = run("export", "clf@v0.1.0", "--format", "safetensors", "-o", out)
    assert result.exit_code == 0, result.stderr
    from safetensors.torch import load_file

    assert torch.equal(
        load_file(str(out))["layers.0.weight"], model.state_dict()["layers.0.weight"]
    )
    registry.stage("clf", "v0.1.0", "prod")
    staged = run("export", "clf#prod", "-f", "pth", "-o", tmp_path / "prod.pth")
    assert staged.exit_code == 0, staged.stderr
    assert (tmp_path / "prod.pth").exists()
    bad = run("export", "clf", "--format", "onnx", "-o", tmp_path / "x.onnx")
    assert bad.exit_code != 0
    assert_one_line_error(bad.stderr, "example input")


def test_validate_finds_a_tampered_cache_file(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry()
    register(registry)
    register(registry, steps=20)
    report = registry.validate_registry()
    assert report.ok and report.models == 1 and report.versions == 2
    assert report.valid_versions == 2 and report.files > 0
    assert run("validate").exit_code == 0

    data = sorted((repo / ".mreg" / "cache" / "data").rglob("*.lance"))
    raw = bytearray(data[0].read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    data[0].write_bytes(bytes(raw))
    report = registry.validate_registry()
    assert not report.ok
    assert any("corrupt in cache" in e.problem for e in report.errors)
    result = run("validate", "--json")
    assert result.exit_code != 0
    found = json.loads(result.stdout)
    assert found["ok"] is False and found["errors"]
    assert_one_line_error(result.stderr, "problem")


def test_validate_reports_a_missing_cache_file(repo: Path) -> None:
    registry = ModelRegistry()
    register(registry)
    data = sorted((repo / ".mreg" / "cache" / "data").rglob("*.lance"))
    data[0].unlink()
    report = registry.validate_registry()
    assert [e.version for e in report.errors] == ["v0.1.0"]
    assert "missing from cache" in report.errors[0].problem


def test_stats_counts_models_versions_stages_and_sizes(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    registry = ModelRegistry()
    empty = registry.stats()
    assert empty.models == 0 and empty.versions == 0 and empty.data_size == 0
    register(registry)
    register(registry, steps=20)
    register(registry, steps=30)
    registry.register_model("raw", train(3)[0].state_dict(), "pytorch", "regression")
    registry.stage("clf", "v0.1.1", "prod")
    registry.remove_model("clf", "v0.1.0")
    found = registry.stats()
    assert found.models == 2
    assert found.versions == 3
    assert found.removed_versions == 1
    assert found.stages == {"prod": 1}
    assert found.by_type == {"classification": 2, "regression": 1}
    assert found.by_format == {"pytorch": 3}
    assert found.data_size > 0
    result = run("stats", "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["versions"] == 3
    table = run("stats")
    assert table.exit_code == 0 and "versions" in table.stdout
