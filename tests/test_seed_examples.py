"""Every example of the model registry seed's document (``seeds/model-registry-README.zh.md``)
runs as written, with only its import line changed to mreg's: a tiny model stands in for a
downloaded one, and the registry lives in a temporary git repository.

The code inside each ``# -- seed --`` block is the seed's, character for character where it
can be (comments translated); what surrounds it builds the world and checks what it did."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from helpers import assert_refused, git, init_work_tree, snapshot
from registry_models import logits, tiny_bert, tiny_tokenizer

from mreg.errors import NotARepository
from mreg.registry import (
    CompressionType,
    ModelFormat,
    ModelLoader,
    ModelRegistry,
    ModelType,
    calculate_checksum,
    register_huggingface_model,
    register_onnx_model,
    register_pytorch_model,
)


@pytest.fixture(autouse=True)
def trusted_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """The examples' own model classes live in this module: trust it, as a user trusts theirs."""
    monkeypatch.setenv("MREG_TRUSTED_MODULES", "registry_models,test_seed_examples")
    # Set, then unset: the examples assign os.environ themselves, and teardown undoes that too.
    for name in ("MODEL_REGISTRY_PATH", "MODEL_REGISTRY_CACHE_SIZE"):
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)


@pytest.fixture
def git_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh git work tree, without ``mreg init``: the seed's users never ran it."""
    root = init_work_tree(tmp_path / "project")
    monkeypatch.chdir(root)
    return root


class MNISTClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.flatten = nn.Flatten()
        self.layers = nn.Sequential(
            nn.Linear(28 * 28, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10)
        )

    def forward(self, x):
        x = self.flatten(x)
        return self.layers(x)


class Widened(nn.Module):
    """A user class whose constructor argument is kept under no attribute of the same name."""

    built = 0

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        Widened.built += 1
        self.layer = nn.Linear(3, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


def onnx_file(path: Path) -> Path:
    """A small ONNX classifier (Gemm + Softmax over 4 features), written with onnx.helper."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["y"], axis=1),
        ],
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


# -- 快速开始 (quick start) ----------------------------------------------------------------------


def test_quick_start_registers_a_linear_layer_without_init_kwargs_and_loads_it_back(
    git_repo: Path,
) -> None:
    # -- seed --
    registry = ModelRegistry("./models")

    model = nn.Linear(10, 1)
    entry = registry.register_model(
        name="linear_model",
        model=model,
        model_format=ModelFormat.PYTORCH,
        model_type=ModelType.CUSTOM,
        version="1.0.0",
        description="简单线性模型",
    )

    loaded_model, tokenizer = registry.load_model("linear_model", "1.0.0")
    # -- end --
    assert isinstance(loaded_model, nn.Linear) and tokenizer is None
    assert same_weights(loaded_model, model)
    batch = torch.randn(16, 10)
    assert torch.equal(loaded_model(batch), model(batch))
    assert entry.metadata.init_kwargs == {"in_features": 10, "out_features": 1, "bias": True}
    assert (git_repo / "models" / "linear_model").is_dir()
    assert "linear_model@v1.0.0" in git(git_repo, "tag", "--list")


def test_quick_start_registers_a_transformers_model_with_its_tokenizer(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    model, tokenizer = tiny_bert(), tiny_tokenizer()  # instead of from_pretrained("distilbert...")
    # -- seed --
    entry = registry.register_model(
        name="distilbert",
        model=model,
        tokenizer=tokenizer,
        model_format=ModelFormat.HUGGINGFACE,
        model_type=ModelType.LANGUAGE_MODEL,
        description="DistilBERT模型",
    )
    # -- end --
    assert entry.metadata.model_type == ModelType.LANGUAGE_MODEL
    loaded, loaded_tokenizer = registry.load_model("distilbert")
    torch.testing.assert_close(logits(loaded, loaded_tokenizer), logits(model, tokenizer))


def test_quick_start_registers_an_onnx_model_read_with_onnx_load(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    onnx_file(git_repo / "model.onnx")
    # -- seed --
    import onnx

    onnx_model = onnx.load("model.onnx")

    entry = registry.register_model(
        name="onnx_model",
        model=onnx_model,
        model_format=ModelFormat.ONNX,
        description="ONNX格式模型",
    )
    # -- end --
    assert entry.model_format == ModelFormat.ONNX
    session, _ = registry.load_model("onnx_model")
    x = np.random.default_rng(1).standard_normal((16, 4)).astype(np.float32)
    (y,) = session.run(None, {"x": x})
    assert y.shape == (16, 3)
    np.testing.assert_allclose(y.sum(axis=1), np.ones(16), rtol=1e-5)


# -- Python API: the documented signatures -------------------------------------------------------


def test_the_documented_signatures_return_what_the_seed_says(
    git_repo: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry("./models")
    model = nn.Linear(8, 2)
    entry = registry.register_model("net", model, ModelFormat.PYTORCH, version="1.0.0")
    registry.register_model("net", nn.Linear(8, 2), ModelFormat.PYTORCH, version="1.1.0")

    assert entry.metadata.name == "net" and entry.metadata.version == "v1.0.0"
    assert [e.metadata.version for e in registry.list_models()] == ["v1.0.0", "v1.1.0"]
    assert registry.get_model_info("net", "latest").metadata.version == "v1.1.0"
    assert registry.get_model_info("no_such_model") is None
    assert registry.get_model_info("net", "9.9.9") is None

    exported = registry.export_model("net", "1.0.0", str(tmp_path / "net.safetensors"))
    assert isinstance(exported, str)
    from safetensors.torch import load_file

    state = load_file(exported)
    assert torch.equal(state["weight"], model.weight.detach())

    assert registry.remove_model("net", "1.0.0") is True
    assert registry.remove_model("net", "1.0.0") is False
    assert registry.remove_model("no_such_model") is False
    assert [e.metadata.version for e in registry.list_models()] == ["v1.1.0"]
    report = registry.validate_registry()
    assert report["total_models"] == 1 and report["valid_models"] == 1 and report["errors"] == []


def test_the_register_helpers_register_each_format_with_a_version(git_repo: Path) -> None:
    ModelRegistry("./models")  # the helpers use the registry of the current directory
    onnx_file(git_repo / "model.onnx")
    linear = nn.Linear(4, 2)
    # -- seed --
    register_pytorch_model("linear", linear, version="1.0.0")
    register_onnx_model("graph", "model.onnx", version="1.0.0")
    register_huggingface_model("bert", tiny_bert(), tokenizer=tiny_tokenizer(), version="1.0.0")
    # -- end --
    registry = ModelRegistry("./models")
    formats = {e.name: e.model_format for e in registry.list_models()}
    assert formats == {
        "bert": ModelFormat.HUGGINGFACE,
        "graph": ModelFormat.ONNX,
        "linear": ModelFormat.PYTORCH,
    }
    loaded, _ = registry.load_model("linear", "1.0.0")
    assert same_weights(loaded, linear)
    # And as methods, as ModelRegistry had them already.
    registry.register_pytorch_model("linear", nn.Linear(4, 2), version="1.1.0")
    assert registry.versions("linear") == ["v1.0.0", "v1.1.0"]


# -- 使用示例 (examples) ------------------------------------------------------------------------


def test_the_complete_workflow_registers_an_mnist_classifier_and_predicts_with_it(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # -- seed --
    registry = ModelRegistry("./my_models")

    model = MNISTClassifier()

    entry = registry.register_model(
        name="mnist_classifier",
        model=model,
        model_format=ModelFormat.PYTORCH,
        model_type=ModelType.CLASSIFICATION,
        version="1.0.0",
        description="MNIST手写数字分类器",
        author="Your Name",
        training_dataset="MNIST",
        training_epochs=10,
        performance_metrics={"accuracy": 0.98, "loss": 0.05, "f1_score": 0.97},
        tags=["mnist", "classification", "cnn"],
        input_shape=[1, 28, 28],
        output_shape=[10],
    )

    print(f"注册成功! 模型ID: {entry.metadata.name}:{entry.metadata.version}")
    print(f"参数数量: {entry.metadata.parameters_count:,}")
    print(f"模型大小: {entry.metadata.model_size_mb:.2f} MB")

    loaded_model, _ = registry.load_model("mnist_classifier", "1.0.0")

    test_input = torch.randn(1, 1, 28, 28)
    with torch.no_grad():
        predictions = loaded_model(test_input)
        predicted_class = torch.argmax(predictions, dim=1)
        print(f"预测类别: {predicted_class.item()}")
    # -- end --
    out = capsys.readouterr().out
    assert "模型ID: mnist_classifier:v1.0.0" in out
    assert "参数数量: 407,050" in out  # 784*512 + 512 + 512*10 + 10
    assert "模型大小: 1.55 MB" in out
    model.eval()
    batch = torch.randn(16, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(loaded_model(batch), model(batch))
    assert f"预测类别: {int(model(test_input).argmax(1))}" in out
    assert (git_repo / "my_models" / "mnist_classifier").is_dir()


def register_three_versions(registry: ModelRegistry) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    trained_models = {v: nn.Linear(4, 2) for v in ("1.0.0", "1.1.0", "2.0.0")}
    # -- seed --
    versions = [
        {"version": "1.0.0", "accuracy": 0.95},
        {"version": "1.1.0", "accuracy": 0.97},
        {"version": "2.0.0", "accuracy": 0.99},
    ]

    for ver in versions:
        registry.register_model(
            name="my_model",
            model=trained_models[ver["version"]],
            model_format=ModelFormat.PYTORCH,
            version=ver["version"],
            performance_metrics={"accuracy": ver["accuracy"]},
        )
    # -- end --
    return trained_models


def test_version_management_lists_every_version_with_its_accuracy_and_loads_the_latest(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry("./models")
    trained_models = register_three_versions(registry)
    # -- seed --
    models = registry.list_models()
    my_models = [m for m in models if m.metadata.name == "my_model"]
    for model in sorted(my_models, key=lambda x: x.metadata.version):
        acc = model.metadata.performance_metrics.get("accuracy", "N/A")
        print(f"版本 {model.metadata.version}: 准确率 {acc}")

    latest_model, _ = registry.load_model("my_model", "latest")
    # -- end --
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "版本 v1.0.0: 准确率 0.95",
        "版本 v1.1.0: 准确率 0.97",
        "版本 v2.0.0: 准确率 0.99",
    ]
    assert same_weights(latest_model, trained_models["2.0.0"])


def test_batch_management_counts_validates_and_loads_a_temporary_model(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry("./models")
    trained_models = register_three_versions(registry)
    registry.register_model(
        "mnist", MNISTClassifier(), ModelFormat.PYTORCH, ModelType.CLASSIFICATION
    )
    input_data = torch.randn(16, 4)
    # -- seed --
    classification_models = registry.list_models(ModelType.CLASSIFICATION)
    print(f"分类模型数量: {len(classification_models)}")

    validation_result = registry.validate_registry()
    print(f"总模型数: {validation_result['total_models']}")
    print(f"有效模型数: {validation_result['valid_models']}")
    if validation_result["errors"]:
        print("错误:")
        for error in validation_result["errors"]:
            print(f"  - {error}")

    with registry.temporary_model("my_model") as (model, tokenizer):  # noqa: RUF059
        result = model(input_data)
    # -- end --
    assert capsys.readouterr().out.splitlines() == [
        "分类模型数量: 1",
        "总模型数: 4",
        "有效模型数: 4",
    ]
    assert torch.equal(result, trained_models["2.0.0"](input_data))
    # The typed report is still there: the mapping is a view of it.
    assert validation_result.versions == 4 and validation_result.ok


def test_validation_errors_are_the_seeds_one_line_strings(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    register_three_versions(registry)
    entry = registry.get_model_info("my_model", "1.1.0")
    _, manifest = registry.repo.lookup("my_model", entry.commit)
    registry.repo.cache.path(manifest.files[0].path).write_bytes(b"flipped")
    # -- seed --
    validation = registry.validate_registry()
    print(validation["errors"])
    # -- end --
    assert validation["total_models"] == 3 and validation["valid_models"] == 2
    (error,) = validation["errors"]
    assert isinstance(error, str)
    assert error.startswith("my_model@v1.1.0: ") and "sha256 mismatch" in error


# -- 最佳实践 (best practice) -------------------------------------------------------------------


def test_safe_loading_and_the_integrity_check_of_an_entry(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry("./models")
    trained_models = register_three_versions(registry)
    # -- seed --
    loaded_model, _ = registry.load_model("my_model", weights_only=True)

    entry = registry.get_model_info("my_model")
    if not entry.verify_integrity():
        print("⚠️ 模型文件可能已损坏!")
    # -- end --
    assert same_weights(loaded_model, trained_models["2.0.0"])
    assert capsys.readouterr().out == ""
    _, manifest = registry.repo.lookup("my_model", entry.commit)
    cached = registry.repo.cache.path(manifest.files[0].path)
    digest = calculate_checksum(cached)
    assert digest == manifest.files[0].sha256
    assert entry.calculate_checksum() == {manifest.files[0].path: digest}
    cached.write_bytes(b"flipped")
    assert entry.verify_integrity() is False


def test_performance_options_shard_a_transformers_model_and_pick_the_device(
    git_repo: Path,
) -> None:
    registry = ModelRegistry("./models")
    large_model, tokenizer = tiny_bert(), tiny_tokenizer()
    # -- seed --
    registry.register_model(
        name="large_model",
        model=large_model,
        model_format=ModelFormat.HUGGINGFACE,
        max_shard_size="2GB",
    )

    model, _ = registry.load_model(
        "large_model", device="cuda" if torch.cuda.is_available() else "cpu"
    )
    # -- end --
    model = model.cpu()
    torch.testing.assert_close(logits(model, tokenizer), logits(large_model, tokenizer))


def test_max_shard_size_writes_a_sharded_folder_that_loads_back(
    git_repo: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry("./models")
    large_model, tokenizer = tiny_bert(), tiny_tokenizer()
    registry.register_model(
        "large_model", large_model, ModelFormat.HUGGINGFACE, max_shard_size="20KB"
    )
    exported = Path(registry.export_model("large_model", "latest", tmp_path / "out"))
    shards = sorted(p.name for p in exported.glob("*.safetensors"))
    assert len(shards) > 1 and shards[0].startswith("model-00001-of-")
    assert (exported / "model.safetensors.index.json").is_file()
    model, _ = registry.load_model("large_model")
    torch.testing.assert_close(logits(model, tokenizer), logits(large_model, tokenizer))


def test_max_shard_size_is_refused_for_a_pytorch_model_with_the_reason(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    with pytest.raises(ValueError, match="max_shard_size splits the weights of a Transformers"):
        registry.register_model("lin", nn.Linear(4, 4), max_shard_size="2GB")
    assert registry.get_model_info("lin") is None


def test_detailed_metadata_is_kept_field_by_field(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    model = nn.Linear(16, 4)
    # -- seed --
    registry.register_model(
        name="production_model",
        model=model,
        model_format=ModelFormat.PYTORCH,
        model_type=ModelType.CLASSIFICATION,
        training_framework="PyTorch 2.0",
        training_dataset="Custom Dataset v2.1",
        training_epochs=50,
        performance_metrics={
            "accuracy": 0.987,
            "precision": 0.985,
            "recall": 0.989,
            "f1_score": 0.987,
            "inference_time_ms": 15.2,
        },
        compression_type=CompressionType.QUANTIZATION_INT8,
        compression_ratio=0.25,
        original_size_mb=400.0,
        dependencies=["torch>=2.0", "torchvision>=0.15"],
        python_version="3.9",
        tags=["production", "optimized", "quantized"],
        license="MIT",
        repository_url="https://github.com/myorg/mymodel",
        paper_url="https://arxiv.org/abs/xxxx.xxxxx",
    )
    # -- end --
    meta = registry.get_model_info("production_model").metadata
    assert meta.training_framework == "PyTorch 2.0" and meta.training_epochs == 50
    assert meta.performance_metrics["inference_time_ms"] == 15.2
    assert meta.compression_type == CompressionType.QUANTIZATION_INT8
    assert meta.compression_ratio == 0.25 and meta.original_size_mb == 400.0
    assert meta.dependencies == ("torch>=2.0", "torchvision>=0.15")
    assert meta.python_version == "3.9" and meta.license == "MIT"
    assert meta.tags == ("production", "optimized", "quantized")
    assert meta.paper_url == "https://arxiv.org/abs/xxxx.xxxxx"


# -- 错误处理 (error handling) ------------------------------------------------------------------


def test_the_error_handling_example_catches_the_documented_exception_types(
    git_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry("./models")
    name, model, model_format = "bad name!", nn.Linear(2, 2), ModelFormat.PYTORCH
    version = "latest"
    # -- seed --
    try:
        entry = registry.register_model(name, model, model_format)
    except ValueError as e:
        print(f"注册失败: {e}")
    except FileNotFoundError as e:
        print(f"文件未找到: {e}")
    except Exception as e:
        print(f"未知错误: {e}")

    try:
        model, tokenizer = registry.load_model(name, version)
    except ValueError as e:
        print(f"模型未找到: {e}")
    except RuntimeError as e:
        print(f"完整性验证失败: {e}")
    except ImportError as e:
        print(f"缺少依赖: {e}")
    # -- end --
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith("注册失败: ") and "bad name!" in first
    assert second.startswith("模型未找到: ")
    with pytest.raises(FileNotFoundError, match="no such file"):
        registry.register_model("x", "missing.pth", model_format)
    assert "entry" not in locals()


# -- 配置和扩展 (configuration and extension) --------------------------------------------------


def test_a_custom_loader_subclass_plugs_in_as_written(git_repo: Path) -> None:
    registry = ModelRegistry("./models")

    # -- seed --
    class CustomLoader(ModelLoader):
        def load(self, model_path: str, **kwargs):
            pass

        def save(self, model, model_path: str, **kwargs):
            pass

        def get_metadata(self, model, model_path: str = None):  # noqa: RUF013
            return {"framework": "custom"}

        def supported_formats(self):
            return [ModelFormat.CUSTOM]

    registry.loaders[ModelFormat.CUSTOM] = CustomLoader()
    # -- end --
    assert isinstance(registry.loaders[ModelFormat.CUSTOM], ModelLoader)


class ArrayLoader(ModelLoader):
    """A custom loader that does its job: a dict of numpy arrays kept as safetensors."""

    def load(self, model_path: str, **kwargs):
        from safetensors.numpy import load_file

        return load_file(model_path)

    def save(self, model, model_path: str, **kwargs):
        from safetensors.numpy import save_file

        save_file(model, model_path + ".safetensors")
        return model_path + ".safetensors"

    def get_metadata(self, model, model_path: str | None = None):
        return {"framework": "custom"}

    def supported_formats(self):
        return [ModelFormat.CUSTOM]


def test_a_custom_loader_saves_and_loads_its_format(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    registry.loaders[ModelFormat.CUSTOM] = ArrayLoader()
    arrays = {"w": np.arange(64, dtype=np.float32).reshape(16, 4)}
    entry = registry.register_model("arrays", arrays, ModelFormat.CUSTOM)
    assert entry.metadata.framework == "custom"
    loaded, tokenizer = registry.load_model("arrays")
    np.testing.assert_array_equal(loaded["w"], arrays["w"]) and tokenizer is None


def test_the_environment_and_the_config_dict_configure_the_registry(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # -- seed --
    os.environ["MODEL_REGISTRY_PATH"] = str(git_repo / "models")  # '/path/to/models'
    os.environ["MODEL_REGISTRY_CACHE_SIZE"] = "1000"

    registry_config = {
        "default_format": ModelFormat.PYTORCH,
        "auto_validate": True,
        "compression_threshold": 100,  # MB
        "backup_enabled": True,
    }

    registry = ModelRegistry(registry_path="./models", **registry_config)
    # -- end --
    monkeypatch.delenv("MODEL_REGISTRY_PATH")
    monkeypatch.delenv("MODEL_REGISTRY_CACHE_SIZE")
    assert registry.folder == git_repo / "models"
    assert registry.cache_size == 1000
    entry = registry.register_model("fmt", {"w": torch.ones(4, 4)})
    assert entry.model_format == ModelFormat.PYTORCH
    first, _ = registry.load_model("fmt")
    again, _ = registry.load_model("fmt")
    assert again is first  # the cache of loaded models


def test_model_registry_path_is_the_default_registry_folder(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_PATH", str(git_repo / "shared_models"))
    monkeypatch.chdir(tmp_path)  # anywhere: the variable names the registry
    registry = ModelRegistry()
    registry.register_model("lin", nn.Linear(2, 2), version="1.0.0")
    assert (git_repo / "shared_models" / "lin").is_dir()


def test_the_model_cache_keeps_the_most_recently_used_models_and_evicts_the_oldest(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODEL_REGISTRY_CACHE_SIZE", "2")
    registry = ModelRegistry("./models")
    for name in ("a", "b", "c"):
        registry.register_model(name, nn.Linear(4, 4), version="1.0.0")
    a1, _ = registry.load_model("a")
    b1, _ = registry.load_model("b")
    assert registry.load_model("a")[0] is a1  # a is now the most recent
    c1, _ = registry.load_model("c")  # evicts b, the least recently used
    assert registry.load_model("a")[0] is a1
    assert registry.load_model("c")[0] is c1
    b2, _ = registry.load_model("b")
    assert b2 is not b1 and same_weights(b2, b1)
    # A temporary model is never kept: its memory goes when the block ends.
    with registry.temporary_model("a") as (model, _):
        assert model is not a1


def test_without_a_cache_size_every_load_returns_a_fresh_model(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    registry.register_model("a", nn.Linear(4, 4), version="1.0.0")
    assert registry.load_model("a")[0] is not registry.load_model("a")[0]


# -- 监控和日志 (monitoring and logging) --------------------------------------------------------


def test_monitoring_logs_registry_actions_and_reports_health(
    git_repo: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    registry = ModelRegistry("./models")
    # -- seed --
    logging.getLogger("mreg.registry").setLevel(logging.INFO)  # 'model_registry' in the seed
    # -- end --
    with caplog.at_level(logging.INFO, logger="mreg.registry"):
        register_three_versions(registry)
        registry.load_model("my_model")
        registry.remove_model("my_model", "1.0.0")
        # -- seed --
        stats = registry.validate_registry()
        print(f"健康状态: {stats['valid_models']}/{stats['total_models']} 模型有效")

        detailed_stats = registry.get_detailed_stats()
        # -- end --
    assert capsys.readouterr().out == "健康状态: 2/2 模型有效\n"
    messages = [r.getMessage() for r in caplog.records if r.name.startswith("mreg.registry")]
    assert "registered my_model v1.0.0" in messages
    assert "loaded my_model v2.0.0" in messages
    assert "removed my_model v1.0.0" in messages
    assert detailed_stats["total_models"] == 2 and detailed_stats["unique_models"] == 1
    assert detailed_stats.versions == 2
    assert registry.get_registry_stats()["formats"] == {"pytorch": 2}


# -- 故障排除 (troubleshooting) -----------------------------------------------------------------


def test_troubleshooting_snippets_run(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    register_three_versions(registry)
    name = "my_model"
    # -- seed --
    validation = registry.validate_registry()
    print(validation["errors"])

    entry = registry.get_model_info(name)
    entry.calculate_checksum()

    model, _ = registry.load_model(name, max_memory={"0": "8GiB"})
    # -- end --
    assert isinstance(model, nn.Linear)


# -- bad input ----------------------------------------------------------------------------------


def test_a_user_class_whose_arguments_cannot_be_recovered_is_refused_at_registration(
    git_repo: Path,
) -> None:
    registry = ModelRegistry("./models")
    before = snapshot(git_repo)
    tags = git(git_repo, "tag", "--list")
    with pytest.raises(ValueError, match=r"Widened.*init_kwargs"):
        registry.register_model("wide", Widened(width=16), ModelFormat.PYTORCH)
    assert snapshot(git_repo) == before and git(git_repo, "tag", "--list") == tags
    # Given init_kwargs, it registers and loads.
    model = Widened(width=16)
    registry.register_model("wide", model, init_kwargs={"width": 16})
    assert same_weights(registry.load_model("wide")[0], model)


def test_a_user_class_built_with_its_defaults_needs_no_init_kwargs(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    model = Widened()
    entry = registry.register_model("wide", model)
    assert entry.metadata.init_kwargs == {"width": 4}
    assert same_weights(registry.load_model("wide")[0], model)


@pytest.mark.parametrize(
    "layer",
    [
        nn.Linear(6, 3, bias=False),
        nn.Conv2d(3, 8, kernel_size=3, stride=2, padding=1),
        nn.Embedding(20, 5, padding_idx=0),
        nn.LayerNorm(12, eps=1e-6),
        nn.LSTM(4, 8, num_layers=2, batch_first=True),
    ],
    ids=lambda layer: type(layer).__name__,
)
def test_standard_torch_layers_are_rebuilt_from_recorded_arguments(
    git_repo: Path, layer: nn.Module
) -> None:
    registry = ModelRegistry("./models")
    registry.register_model("layer", layer)
    loaded, _ = registry.load_model("layer")
    assert type(loaded) is type(layer) and same_weights(loaded, layer)


def test_an_untrusted_class_is_never_built_at_registration(
    git_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MREG_TRUSTED_MODULES", "registry_models")
    model = Widened()
    built = Widened.built
    entry = ModelRegistry("./models").register_model("wide", model)
    assert Widened.built == built and entry.metadata.init_kwargs == {"width": 4}


def test_a_sequential_is_refused_at_registration_naming_init_kwargs(git_repo: Path) -> None:
    registry = ModelRegistry("./models")
    with pytest.raises(ValueError, match="Sequential") as raised:
        registry.register_model("seq", nn.Sequential(nn.Linear(4, 8), nn.ReLU()))
    assert "init_kwargs" in raised.value.hint and "state_dict()" in raised.value.hint
    assert registry.get_model_info("seq") is None
    assert git(git_repo, "tag", "--list") == ""


def test_a_registry_outside_a_git_repository_is_a_one_line_error(
    tmp_path: Path, run, monkeypatch: pytest.MonkeyPatch
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(NotARepository, match="not inside a git work tree") as raised:
        ModelRegistry(registry_path=str(plain / "models"))
    assert "\n" not in str(raised.value) and "git init" in raised.value.hint
    assert list(plain.iterdir()) == []
    monkeypatch.chdir(plain)
    assert_refused(run("models"), "not inside a git work tree")


def test_the_first_registry_in_a_git_repository_initialises_mreg_there(git_repo: Path) -> None:
    assert not (git_repo / ".mreg").exists()
    ModelRegistry(registry_path="./models")
    assert (git_repo / ".mreg" / "config.toml").is_file()


def test_unknown_registry_options_are_refused_with_the_known_ones(git_repo: Path) -> None:
    with pytest.raises(ValueError, match="auto_validte") as raised:
        ModelRegistry(registry_path="./models", auto_validte=True)
    assert "auto_validate" in raised.value.hint


def test_the_cli_still_asks_for_mreg_init_in_an_uninitialised_repository(
    git_repo: Path, run
) -> None:
    assert_refused(run("models"), "not initialised", "mreg init")
    assert not (git_repo / ".mreg").exists()
