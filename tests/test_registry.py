"""The model registry through its Python API: register, version, stage, load safely."""

from __future__ import annotations

import os
import subprocess
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import Marker, added, commit_all, git, make_table, snapshot
from registry_models import TinyClassifier, predict, toy_data, train

import mreg
from mreg import ModelFormat, ModelIntegrityError, ModelRegistry, ModelType
from mreg.registry import ModelClassError, RegistryError

X, _ = toy_data(seed=1)


pytestmark = pytest.mark.usefixtures("trusted_test_models")


def tags(root: Path) -> list[str]:
    return git(root, "tag", "--list").split()


def register_three(registry: ModelRegistry) -> list[TinyClassifier]:
    """Three versions of a classifier trained 5, 20 and 60 steps, with their accuracy."""
    trained = []
    for steps in (5, 20, 60):
        model, accuracy = train(steps)
        registry.register_model(
            "clf",
            model,
            ModelFormat.PYTORCH,
            ModelType.CLASSIFICATION,
            init_kwargs={"features": 4, "hidden": 8, "classes": 3},
            description=f"trained {steps} steps",
            author="ml team",
            training_epochs=steps,
            performance_metrics={"accuracy": accuracy, "loss": 1.0 / steps},
            tags=["toy", "cls"],
            input_shape=[4],
            output_shape=[3],
            license="MIT",
        )
        trained.append(model)
    return trained


def test_three_trained_versions_are_tagged_and_the_prod_stage_loads_equal_predictions(
    repo: Path,
) -> None:
    registry = ModelRegistry()
    trained = register_three(registry)
    assert registry.versions("clf") == ["v0.1.0", "v0.1.1", "v0.1.2"]
    assert {"clf@v0.1.0", "clf@v0.1.1", "clf@v0.1.2"} <= set(tags(repo))
    assert registry.stage("clf", "0.1.1", "prod") == "clf#prod#1"

    model, tokenizer = registry.load_model("clf", "prod")
    assert tokenizer is None
    assert isinstance(model, TinyClassifier)
    assert torch.equal(predict(model, X), predict(trained[1], X))
    latest, _ = registry.load_model("clf")
    assert torch.equal(predict(latest, X), predict(trained[2], X))

    info = registry.get_model_info("clf", "v0.1.2")
    assert info.metadata.performance_metrics["loss"] == pytest.approx(1 / 60)
    assert info.metadata.model_class == "registry_models.TinyClassifier"
    assert info.metadata.parameters_count == sum(p.numel() for p in trained[2].parameters())
    assert info.metadata.tags == ("toy", "cls")
    assert info.metadata.input_shape == (4,)
    assert info.metadata.training_epochs == 60
    assert info.metadata.framework == "torch"
    assert registry.get_model_info("clf", "#prod").version == "v0.1.1"
    assert registry.get_model_info("clf", "prod").stages == ("prod",)
    assert [e.version for e in registry.list_models(ModelType.CLASSIFICATION)] == [
        "v0.1.0", "v0.1.1", "v0.1.2",
    ]  # fmt: skip
    assert [e.version for e in registry.list_models(stage="prod")] == ["v0.1.1"]
    assert registry.list_models(ModelType.REGRESSION) == []
    # Only the registry's folder was committed, one commit per version.
    assert git(repo, "status", "--porcelain", "models").strip() == ""
    assert len(git(repo, "log", "--format=%H", "--", "models").split()) == 3


def test_a_fresh_clone_after_pull_loads_prod_with_equal_predictions(
    repo: Path, remote_dir: Path, run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit_all(repo, "mreg with a remote")
    trained = register_three(ModelRegistry())
    ModelRegistry().stage("clf", "v0.1.0", "prod")
    ModelRegistry().push()
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(repo), str(clone)], check=True)
    monkeypatch.chdir(clone)
    assert run("pull").exit_code == 0

    # The work tree holds v0.1.2; the prod version's data are fetched on demand.
    for version in ("#prod", "prod"):
        model, _ = ModelRegistry().load_model("clf", version)
        assert torch.equal(predict(model, X), predict(trained[0], X))


def test_versions_given_with_or_without_v_become_v_tags_and_a_duplicate_is_refused(
    repo: Path,
) -> None:
    registry = ModelRegistry()
    model, _ = train(3)
    entry = registry.register_model("clf", model, "pytorch", version="1.0.0")
    assert entry.tag == "clf@v1.0.0"
    before = snapshot(repo), tags(repo)
    with pytest.raises(RegistryError, match=r"clf v1\.0\.0 is already registered"):
        registry.register_model("clf", model, "pytorch", version="v1.0.0")
    with pytest.raises(ValueError, match=r"'1\.0' is not a valid version"):
        registry.register_model("clf", model, "pytorch", version="1.0")
    assert (snapshot(repo), tags(repo)) == before
    assert registry.register_model("clf", train(4)[0], "pytorch").version == "v1.0.1"


def test_unknown_names_and_versions_raise_value_errors(repo: Path) -> None:
    registry = ModelRegistry()
    with pytest.raises(ValueError, match="no model named 'ghost' is registered"):
        registry.load_model("ghost")
    registry.register_model("clf", train(3)[0], "pytorch")
    with pytest.raises(ValueError, match=r"clf has no version v9\.9\.9"):
        registry.entry("clf", "9.9.9")
    assert registry.get_model_info("clf", "9.9.9") is None  # the seed's answer
    with pytest.raises(ValueError, match="no version of 'clf' is in stage 'prod'"):
        registry.load_model("clf", "#prod")
    with pytest.raises(ValueError, match="'nonsense' is not a version, stage or git revision"):
        registry.load_model("clf", "nonsense")
    with pytest.raises(ValueError, match="unknown filter colour"):
        registry.list_models(colour="red")


def test_loading_a_stage_that_holds_no_version_is_a_value_error_naming_the_stage(
    repo: Path,
) -> None:
    (repo / ".mreg" / "config.toml").write_text('[registry]\nstages = ["dev", "prod"]\n')
    registry = ModelRegistry()
    registry.register_model("clf", train(3)[0], "pytorch")
    # Allowed but never assigned; then assigned and taken back: neither is a git revision.
    with pytest.raises(ValueError, match="no version of 'clf' is in stage 'dev'"):
        registry.load_model("clf", "dev")
    registry.stage("clf", "v0.1.0", "prod")
    registry.unstage("clf", "prod")
    with pytest.raises(RegistryError, match=r"no version of 'clf' is in stage 'prod'") as error:
        registry.load_model("clf", "prod")
    assert error.value.hint is not None and "mreg stage clf VERSION prod" in error.value.hint


def test_a_temporary_model_is_usable_in_the_block_and_the_registry_keeps_no_reference(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = ModelRegistry()
    trained, _ = train(5)
    registry.register_model("clf", trained, "pytorch", init_kwargs={"hidden": 8})
    emptied: list[bool] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: emptied.append(True))

    def predict_once() -> weakref.ref[torch.nn.Module]:
        with registry.temporary_model("clf", "v0.1.0") as (model, tokenizer):
            assert tokenizer is None
            assert torch.equal(predict(model, X), predict(trained, X))
            assert not emptied
            return weakref.ref(model)

    module = predict_once()
    assert module() is None
    assert emptied == [True]


def test_the_register_helpers_pick_their_format(repo: Path, tmp_path: Path) -> None:
    registry = ModelRegistry()
    entry = registry.register_pytorch_model("clf", train(3)[0], init_kwargs={"hidden": 8})
    assert entry.model_format == ModelFormat.PYTORCH
    assert isinstance(registry.load_model("clf")[0], TinyClassifier)
    weight = np.ones((4, 3), dtype=np.float32)
    assert registry.register_onnx_model("mm", onnx_model(weight)).model_format == ModelFormat.ONNX
    import onnx

    path = tmp_path / "mm.onnx"
    onnx.save(onnx_model(weight * 2), str(path))
    assert registry.register_onnx_model("mm", path, tags=["onnx"]).version == "v0.1.1"
    session, _ = registry.load_model("mm")
    (y,) = session.run(None, {"x": np.ones((1, 4), dtype=np.float32)})
    np.testing.assert_allclose(y, np.full((1, 3), 8.0))


def test_a_stage_not_in_the_configured_list_is_refused(repo: Path) -> None:
    (repo / ".mreg" / "config.toml").write_text('[registry]\nstages = ["dev", "prod"]\n')
    registry = ModelRegistry()
    registry.register_model("clf", train(3)[0], "pytorch")
    before = tags(repo)
    with pytest.raises(RegistryError, match="stage 'qa' is not allowed"):
        registry.stage("clf", "v0.1.0", "qa")
    with pytest.raises(RegistryError, match="'latest' is not a valid stage name"):
        registry.stage("clf", "v0.1.0", "latest")
    assert tags(repo) == before
    assert registry.stage("clf", "v0.1.0", "dev") == "clf#dev#1"


def test_a_version_staged_takes_the_stage_from_the_one_there_and_unstage_empties_it(
    repo: Path,
) -> None:
    registry = ModelRegistry()
    for steps in (3, 6):
        registry.register_model("clf", train(steps)[0], "pytorch")
    registry.stage("clf", "v0.1.0", "prod")
    registry.stage("clf", "v0.1.1", "prod")
    registry.stage("clf", "v0.1.1", "staging")
    assert registry.stages("clf") == {"prod": "v0.1.1", "staging": "v0.1.1"}
    # v0.1.0 left prod in a tag of its own, so GTO (which shows the highest version of those
    # in a stage) reads the same stages as mreg, rollbacks included.
    assert {"clf#prod#1", "clf#prod!#2", "clf#prod#3", "clf#staging#4"} <= set(
        git(repo, "tag").split()
    )
    with pytest.raises(RegistryError, match="already in stage 'prod'"):
        registry.stage("clf", "v0.1.1", "prod")
    registry.stage("clf", "v0.1.0", "prod")
    assert registry.stages("clf") == {"prod": "v0.1.0", "staging": "v0.1.1"}
    assert registry.unstage("clf", "prod") == "clf#prod!#7"
    assert registry.stages("clf") == {"staging": "v0.1.1"}
    with pytest.raises(RegistryError, match="no version of 'clf' is in stage 'prod'"):
        registry.unstage("clf", "prod")


def test_remove_writes_deregistration_tags_and_keeps_the_data(repo: Path) -> None:
    registry = ModelRegistry()
    models = [train(steps)[0] for steps in (3, 6)]
    for model in models:
        registry.register_model("clf", model, "pytorch")
    cache_before = snapshot(repo / ".mreg" / "cache" / "data")
    assert registry.remove_versions("clf", "0.1.1") == ["clf@v0.1.1!"]
    assert registry.versions("clf") == ["v0.1.0"]
    with pytest.raises(ValueError, match=r"clf v0\.1\.1 was removed"):
        registry.load_model("clf", "v0.1.1")
    with pytest.raises(ValueError, match="already registered"):
        registry.register_model("clf", models[1], "pytorch", version="0.1.1")
    latest, _ = registry.load_model("clf")
    assert torch.equal(predict(latest, X), predict(models[0], X))
    assert registry.remove_versions("clf") == ["clf@v0.1.0!"]
    assert registry.list_models() == []
    assert snapshot(repo / ".mreg" / "cache" / "data") == cache_before
    assert registry.deprecate("clf") == "clf@deprecated"
    assert "clf@deprecated" in tags(repo)


def test_a_state_dict_without_a_class_loads_back_as_a_state_dict(repo: Path) -> None:
    registry = ModelRegistry()
    state = train(3)[0].state_dict()
    registry.register_model("weights", state, ModelFormat.SAFETENSORS)
    assert (repo / "models" / "weights" / "model.safetensors").exists()
    loaded, _ = registry.load_model("weights", "v0.1.0")
    assert loaded.keys() == state.keys()
    assert all(torch.equal(loaded[k], state[k]) for k in state)


def test_a_class_path_that_does_not_import_is_a_clear_import_error(repo: Path) -> None:
    registry = ModelRegistry()
    registry.register_model(
        "clf", train(3)[0].state_dict(), "pytorch", model_class="nowhere.Missing"
    )
    trusting = ModelRegistry(trusted_modules=["nowhere"])
    with pytest.raises(ImportError, match=r"model class nowhere\.Missing does not import"):
        trusting.load_model("clf")
    registry.register_model(
        "clf", train(3)[0], "pytorch", init_kwargs={"hidden": 8, "colour": "red"}
    )
    with pytest.raises(ModelClassError, match="unexpected keyword argument 'colour'"):
        registry.load_model("clf")


def test_a_class_defined_inside_a_function_is_refused_before_anything_is_written(
    repo: Path,
) -> None:
    class Local(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 2)

    before = snapshot(repo)
    with pytest.raises(RegistryError, match="defined inside a function"):
        ModelRegistry().register_model("local", Local(), "pytorch")
    assert snapshot(repo) == before


def test_a_tampered_cache_file_raises_the_integrity_error(repo: Path) -> None:
    registry = ModelRegistry()
    registry.register_model("clf", train(3)[0], "pytorch")
    data = sorted((repo / ".mreg" / "cache" / "data").rglob("*.lance"))
    assert data
    raw = bytearray(data[0].read_bytes())
    raw[len(raw) // 3] ^= 0xFF
    data[0].write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match="corrupt in cache"):
        registry.load_model("clf")
    assert issubclass(ModelIntegrityError, RuntimeError)


def test_a_malicious_pth_registered_by_path_is_refused_and_nothing_runs(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    marker = tmp_path / "pwned"
    evil = tmp_path / "evil.pth"
    torch.save({"weight": torch.zeros(2), "payload": Marker(marker)}, evil)
    before = snapshot(repo), tags(repo)
    with pytest.raises(mreg.MregError, match="refused"):
        ModelRegistry().register_model("evil", evil)
    assert not marker.exists()
    assert (snapshot(repo), tags(repo)) == before
    assert not (repo / "models").exists()
    assert os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] == "1"


def test_a_missing_weights_file_is_a_file_not_found_error(repo: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.pth: no such file"):
        ModelRegistry().register_model("clf", "nope.pth")


def test_a_pth_checkpoint_registered_by_path_loads_back_with_its_structure(
    repo: Path, tmp_path: Path
) -> None:
    state = train(3)[0].state_dict()
    path = tmp_path / "ckpt.pth"
    torch.save({"model": state, "epoch": 3}, path)
    entry = ModelRegistry().register_model("ckpt", path, training_epochs=3)
    assert entry.model_format == ModelFormat.PYTORCH
    loaded, _ = ModelRegistry().load_model("ckpt")
    assert loaded["epoch"] == 3
    assert torch.equal(loaded["model"]["layers.2.bias"], state["layers.2.bias"])


def onnx_model(weight: np.ndarray):  # type: ignore[no-untyped-def]
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"])],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(weight, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def test_an_onnx_model_loads_as_an_onnxruntime_session_with_equal_outputs(repo: Path) -> None:
    weight = np.arange(12, dtype=np.float32).reshape(4, 3) / 10
    registry = ModelRegistry()
    entry = registry.register_model("tiny-onnx", onnx_model(weight), model_type="vision")
    assert entry.model_format == ModelFormat.ONNX
    assert entry.metadata.info
    session, _ = registry.load_model("tiny-onnx")
    x = np.ones((1, 4), dtype=np.float32)
    (y,) = session.run(None, {"x": x})
    np.testing.assert_allclose(y, x @ weight, rtol=1e-6)
    proto, _ = registry.load_model("tiny-onnx", return_proto=True)
    assert proto.graph.node[0].op_type == "MatMul"


def test_an_onnx_model_that_fails_the_checker_is_refused(repo: Path) -> None:
    model = onnx_model(np.zeros((4, 3), dtype=np.float32))
    model.graph.node[0].input[1] = "undefined"
    before = snapshot(repo)
    with pytest.raises(mreg.MregError, match=r"fails onnx\.checker"):
        ModelRegistry().register_model("bad", model, ModelFormat.ONNX)
    assert snapshot(repo) == before


class NumpyLoader:
    """A plug-in loader: dicts of numpy arrays, kept as safetensors."""

    def supported_formats(self) -> list[ModelFormat]:
        return [ModelFormat.CUSTOM]

    def save(self, model, model_path: str, **kwargs):  # type: ignore[no-untyped-def]
        from safetensors.numpy import save_file

        save_file(model, model_path + ".safetensors")
        return model_path + ".safetensors"

    def load(self, model_path: str, **kwargs):  # type: ignore[no-untyped-def]
        from safetensors.numpy import load_file

        return load_file(model_path)

    def get_metadata(self, model, model_path=None):  # type: ignore[no-untyped-def]
        return {"framework": "numpy"}


def test_a_plugged_in_loader_saves_and_loads_its_format(repo: Path) -> None:
    registry = ModelRegistry()
    registry.loaders[ModelFormat.CUSTOM] = NumpyLoader()
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3)}
    entry = registry.register_model("np-model", arrays, ModelFormat.CUSTOM)
    assert entry.metadata.framework == "numpy"
    loaded, _ = registry.load_model("np-model")
    np.testing.assert_array_equal(loaded["a"], arrays["a"])
    with pytest.raises(RegistryError, match="no loader for format 'custom'"):
        ModelRegistry().load_model("np-model")


def test_a_new_version_in_another_format_replaces_the_old_file_in_the_folder(
    repo: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry()
    registry.register_model("clf", train(3)[0], "pytorch")
    path = tmp_path / "weights.pth"
    torch.save(train(4)[0].state_dict(), path)
    registry.register_model("clf", path)
    assert registry.get_model_info("clf").metadata.model_class is None
    folder = repo / "models" / "clf"
    assert sorted(p.name for p in folder.iterdir()) == [
        ".gitignore",
        "model.pth",
        "model.pth.mreg.toml",
    ]
    first, _ = registry.load_model("clf", "v0.1.0")
    assert isinstance(first, TinyClassifier)
    second, _ = registry.load_model("clf", "v0.1.1")
    assert torch.equal(second["layers.0.bias"], torch.load(path)["layers.0.bias"])


def test_registry_path_env_var_and_an_explicit_folder_choose_where_models_go(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ModelRegistry("./my_models").register_model("a", train(3)[0], "pytorch")
    assert (repo / "my_models" / "a" / "model.safetensors").exists()
    monkeypatch.setenv("MODEL_REGISTRY_PATH", str(repo / "elsewhere"))
    ModelRegistry().register_model("b", train(3)[0], "pytorch")
    assert (repo / "elsewhere" / "b" / "model.safetensors").exists()
    # A model keeps its folder whoever registers its next version.
    ModelRegistry().register_model("a", train(4)[0], "pytorch")
    assert [e.manifest_path for e in ModelRegistry().list_models(name="a")] == [
        "my_models/a/model.safetensors.mreg.toml"
    ] * 2


def tag_dataset(repo: Path, run, name: str, version: str, rows: int) -> None:  # type: ignore[no-untyped-def]
    """``mreg add`` a csv of ``rows`` rows as dataset ``name``, commit, ``mreg tag`` it."""
    added(run, make_table(repo / f"{name}.csv", rows=rows))
    commit_all(repo, f"{name} {version}")
    result = run("tag", name, version)
    assert result.exit_code == 0, result.stderr


def test_datasets_tagged_like_versions_are_not_models_anywhere_in_the_registry(
    repo: Path, run, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    tag_dataset(repo, run, "t", "v1.0.0", rows=5)
    registry = ModelRegistry()
    trained, _ = train(3)
    registry.register_model("clf", trained, "pytorch", tags=["toy"], init_kwargs={"hidden": 8})
    tag_dataset(repo, run, "t", "v1.1.0", rows=8)  # a dataset version after the model's

    assert [s.name for s in registry.models()] == ["clf"]
    assert [e.tag for e in registry.list_models()] == ["clf@v0.1.0"]
    assert [e.tag for e in registry.list_models(tags="toy")] == ["clf@v0.1.0"]
    assert [e.tag for e in registry.search("")] == ["clf@v0.1.0"]
    assert registry.search("t") == registry.search("kind:dataset") == []
    stats = registry.stats()
    assert (stats.models, stats.versions, stats.by_format) == (1, 1, {"pytorch": 1})
    report = registry.validate_registry()
    assert report.ok, report.errors
    assert (report.models, report.versions, report.valid_versions) == (1, 1, 1)
    model, _ = registry.load_model("clf")
    assert torch.equal(predict(model, X), predict(trained, X))

    # Asked for by name, the dataset is refused as what it is, and nothing changes.
    before = snapshot(repo), tags(repo)
    refused = "'t' is a dataset, not a registered model"
    for ask in (
        lambda: registry.load_model("t"),
        lambda: registry.get_model_info("t"),
        lambda: registry.get_model_info("t", "v1.0.0"),
        lambda: registry.versions("t"),
        lambda: registry.stage("t", "v1.1.0", "prod"),
        lambda: registry.remove_model("t"),
        lambda: registry.register_model("t", train(3)[0], "pytorch"),
    ):
        with pytest.raises(RegistryError, match=refused) as error:
            ask()
        assert isinstance(error.value, ValueError)
        assert error.value.hint is not None and "mreg show t" in error.value.hint
    assert (snapshot(repo), tags(repo)) == before


def test_an_untagged_dataset_name_cannot_be_registered_as_a_model(repo: Path, run) -> None:  # type: ignore[no-untyped-def]
    added(run, make_table(repo / "data.csv", rows=3))
    commit_all(repo, "data")
    before = snapshot(repo), tags(repo)
    with pytest.raises(RegistryError, match="'data' is a dataset, not a registered model"):
        ModelRegistry().register_model("data", train(3)[0], "pytorch")
    assert (snapshot(repo), tags(repo)) == before
    with pytest.raises(RegistryError, match="no model named 'data' is registered"):
        ModelRegistry().load_model("data")
