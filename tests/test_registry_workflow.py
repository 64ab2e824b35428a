"""The registry end to end, the way a team uses it: train, register versions with metrics,
promote one to prod, share through git and a remote, and use it from a fresh clone."""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import commit_all
from registry_models import logits, predict, tiny_bert, tiny_tokenizer, token_ids, toy_data, train

from mreg import ModelFormat, ModelRegistry, ModelType

pytestmark = pytest.mark.usefixtures("trusted_test_models")


X, _ = toy_data(seed=1)


def test_train_register_promote_push_then_clone_pull_load_prod_and_export_to_onnx(
    repo: Path, remote_dir: Path, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    commit_all(repo, "mreg with a local remote")

    # Three training runs, each registered with its metrics.
    registry = ModelRegistry()
    trained = {}
    for steps in (5, 20, 60):
        model, accuracy = train(steps)
        entry = registry.register_model(
            "clf",
            model,
            ModelFormat.PYTORCH,
            ModelType.CLASSIFICATION,
            init_kwargs={"features": 4, "hidden": 8, "classes": 3},
            performance_metrics={"accuracy": accuracy},
            training_epochs=steps,
            input_shape=[4],
        )
        trained[entry.version] = model
    best = max(
        registry.list_models(name="clf"), key=lambda e: e.metadata.performance_metrics["accuracy"]
    )
    registry.stage("clf", best.version, "prod")
    # A Transformers model goes in with its tokenizer, in the same repository.
    bert, tokenizer = tiny_bert(), tiny_tokenizer()
    registry.register_huggingface_model("bert", bert, tokenizer, model_type="classification")
    registry.push()

    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    monkeypatch.chdir(clone)
    pulled = run("pull")
    assert pulled.exit_code == 0, pulled.stderr
    assert f"at clf@{best.version}" in run("show", "clf#prod").stdout

    elsewhere = ModelRegistry()
    assert elsewhere.stages("clf") == {"prod": best.version}
    prod, _ = elsewhere.load_model("clf", "prod")
    assert torch.equal(predict(prod, X), predict(trained[best.version], X))

    exported = run("export", "clf#prod", "--format", "onnx", "-o", tmp_path / "clf.onnx")
    assert exported.exit_code == 0, exported.stderr
    import onnxruntime

    session = onnxruntime.InferenceSession(
        str(tmp_path / "clf.onnx"), providers=["CPUExecutionProvider"]
    )
    name = session.get_inputs()[0].name
    for row in X[:4]:  # one sample at a time: the batch axis is dynamic
        (got,) = session.run(None, {name: row[None].numpy()})
        np.testing.assert_allclose(got, predict(prod, row[None]).numpy(), atol=1e-5)

    loaded, loaded_tokenizer = elsewhere.load_model("bert")
    assert token_ids(loaded_tokenizer) == token_ids(tokenizer)
    assert torch.equal(logits(loaded, loaded_tokenizer), logits(bert, tokenizer))
