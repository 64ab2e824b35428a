"""ONNX exports take any batch size: the batch axis is dynamic (and the sequence axis of a
Transformers model's token inputs), other axes are dynamic when the user names them, and
onnxruntime's outputs equal torch's for a batch of 1 and of 16."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import assert_refused
from registry_models import SENTENCES, TinyClassifier, predict, tiny_bert, tiny_tokenizer

from mreg import ModelRegistry

pytestmark = pytest.mark.usefixtures("trusted_test_models")


def session(path: Path):  # type: ignore[no-untyped-def]
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def register_classifier(features: int, input_shape: list[int]) -> TinyClassifier:
    torch.manual_seed(0)
    model = TinyClassifier(features=features).eval()
    ModelRegistry().register_model(
        "clf",
        model,
        "pytorch",
        "classification",
        init_kwargs={"features": features, "hidden": 8, "classes": 3},
        input_shape=input_shape,
    )
    return model


@pytest.mark.parametrize("batch", [1, 16])
def test_a_classifier_exported_to_onnx_takes_a_batch_of_any_size(
    repo: Path, tmp_path: Path, batch: int
) -> None:
    model = register_classifier(64, input_shape=[64])
    path = ModelRegistry().export_model("clf", "latest", tmp_path / "clf.onnx", "onnx")

    x = torch.randn(batch, 64, generator=torch.Generator().manual_seed(batch))
    onnx = session(path)
    (got,) = onnx.run(None, {onnx.get_inputs()[0].name: x.numpy()})
    np.testing.assert_allclose(got, predict(model, x).numpy(), atol=1e-5)


def test_an_axis_the_user_names_on_the_command_line_is_dynamic_too(
    repo: Path, tmp_path: Path, run
) -> None:  # type: ignore[no-untyped-def]
    model = register_classifier(4, input_shape=[5, 4])  # a sequence of 5 steps of 4 features
    fixed, dynamic = tmp_path / "fixed.onnx", tmp_path / "dynamic.onnx"
    assert run("export", "clf", "--format", "onnx", "-o", fixed).exit_code == 0
    result = run("export", "clf", "-f", "onnx", "-o", dynamic, "--dynamic-axis", "x:1=steps")
    assert result.exit_code == 0, result.stderr

    assert [i.shape for i in session(fixed).get_inputs()] == [["batch", 5, 4]]
    onnx = session(dynamic)
    assert [i.shape for i in onnx.get_inputs()] == [["batch", "steps", 4]]
    for batch, steps in ((1, 3), (16, 9)):
        x = torch.randn(batch, steps, 4)
        (got,) = onnx.run(None, {"x": x.numpy()})
        np.testing.assert_allclose(got, predict(model, x).numpy(), atol=1e-5)


def test_the_api_takes_dynamic_axes_in_torch_onnx_form(repo: Path, tmp_path: Path) -> None:
    register_classifier(4, input_shape=[5, 4])
    path = ModelRegistry().export_model(
        "clf", "latest", tmp_path / "m.onnx", "onnx", dynamic_axes={"x": [1]}
    )
    (shape,) = [i.shape for i in session(path).get_inputs()]
    assert shape[0] == "batch" and isinstance(shape[1], str) and shape[2] == 4


@pytest.mark.parametrize(
    ("axis", "words"),
    [
        ("y:1", ["no input named 'y'", "x"]),
        ("x", ["--dynamic-axis", "INPUT:AXIS"]),
        ("x:one", ["--dynamic-axis", "INPUT:AXIS"]),
        ("x:7", ["axis 7", "3 dimensions"]),
    ],
)
def test_a_dynamic_axis_that_does_not_fit_is_refused_in_one_line_and_writes_nothing(
    repo: Path, tmp_path: Path, run, axis: str, words: list[str]
) -> None:  # type: ignore[no-untyped-def]
    register_classifier(4, input_shape=[5, 4])
    out = tmp_path / "out.onnx"
    assert_refused(run("export", "clf", "-f", "onnx", "-o", out, "--dynamic-axis", axis), *words)
    assert not out.exists()


def test_a_transformers_model_exports_with_dynamic_batch_and_sequence_length(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    bert, tokenizer = tiny_bert(), tiny_tokenizer()
    ModelRegistry().register_huggingface_model("bert", bert, tokenizer)
    path = ModelRegistry().export_model("bert", "latest", tmp_path / "bert.onnx", "onnx")

    onnx = session(path)
    names = [i.name for i in onnx.get_inputs()]
    assert all(i.shape[:2] == ["batch", "sequence"] for i in onnx.get_inputs())
    for texts in (SENTENCES[:1], (SENTENCES * 6)[:16]):
        batch = tokenizer(list(texts), return_tensors="pt", padding=True)
        (got, *_) = onnx.run(None, {n: batch[n].numpy() for n in names})
        with torch.no_grad():
            expected = bert(**{n: batch[n] for n in names}).logits
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
