"""Transformers models in the registry: registered with their tokenizer, loaded back as
``(model, tokenizer)`` through the recorded class, offline, with every file's sha256 checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import git, snapshot
from registry_models import logits, tiny_bert, tiny_tokenizer, token_ids, train

from mreg import ModelFormat, ModelIntegrityError, ModelRegistry
from mreg.registry import ModelClassError, RegistryError


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach the Hugging Face Hub fails instead of waiting on the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def test_a_model_and_its_tokenizer_load_back_with_equal_logits_and_token_ids(repo: Path) -> None:
    model, tokenizer = tiny_bert(), tiny_tokenizer()
    registry = ModelRegistry()
    entry = registry.register_huggingface_model(
        "bert", model, tokenizer, model_type="classification", performance_metrics={"f1": 0.5}
    )
    assert entry.tag == "bert@v0.1.0"
    assert entry.model_format == ModelFormat.HUGGINGFACE
    assert entry.metadata.model_class == "transformers.BertForSequenceClassification"
    assert entry.metadata.framework == "transformers"
    assert entry.metadata.info["architecture"] == "BertForSequenceClassification"
    assert entry.metadata.parameters_count == sum(p.numel() for p in model.parameters())
    folder = repo / "models" / "bert" / "model"
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {
        p.name for p in folder.iterdir()
    }
    assert git(repo, "status", "--porcelain", "models").strip() == ""

    loaded, loaded_tokenizer = registry.load_model("bert", "v0.1.0")
    assert type(loaded) is type(model) and not loaded.training
    assert token_ids(loaded_tokenizer) == token_ids(tokenizer)
    assert torch.equal(logits(loaded, loaded_tokenizer), logits(model, tokenizer))
    # Loaded from the cache into a temporary folder: nothing of it is left behind.
    assert list((repo / ".mreg" / "tmp").iterdir()) == []


def test_a_new_version_without_a_tokenizer_loads_with_none_and_the_old_one_keeps_its_own(
    repo: Path,
) -> None:
    registry = ModelRegistry()
    first, tokenizer = tiny_bert(seed=0), tiny_tokenizer()
    registry.register_model("bert", first, tokenizer=tokenizer)  # the format is inferred
    second = tiny_bert(seed=1)
    registry.register_model("bert", second, ModelFormat.HUGGINGFACE)
    # The folder holds the new version only: no tokenizer file stayed behind from the first.
    assert "tokenizer.json" not in {p.name for p in (repo / "models" / "bert" / "model").iterdir()}

    model, none = registry.load_model("bert")
    assert none is None
    assert torch.equal(logits(model, tokenizer), logits(second, tokenizer))
    old, old_tokenizer = registry.load_model("bert", "v0.1.0")
    assert torch.equal(logits(old, old_tokenizer), logits(first, tokenizer))


def test_a_save_pretrained_folder_registered_by_path_loads_through_its_config_class(
    repo: Path, tmp_path: Path
) -> None:
    model, tokenizer = tiny_bert(), tiny_tokenizer()
    folder = tmp_path / "exported"
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    entry = ModelRegistry().register_model("bert", folder)
    assert entry.model_format == ModelFormat.HUGGINGFACE
    assert entry.metadata.model_class == "transformers.BertForSequenceClassification"
    loaded, loaded_tokenizer = ModelRegistry().load_model("bert")
    assert torch.equal(logits(loaded, loaded_tokenizer), logits(model, tokenizer))


def test_a_folder_whose_config_names_a_class_that_does_not_import_is_a_clear_error(
    repo: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "odd"
    tiny_bert().save_pretrained(folder)
    config = json.loads((folder / "config.json").read_text())
    config["architectures"] = ["NoSuchBertModel"]
    (folder / "config.json").write_text(json.dumps(config))
    registry = ModelRegistry()
    registry.register_model("odd", folder)
    with pytest.raises(ImportError, match=r"model class transformers\.NoSuchBertModel does not"):
        registry.load_model("odd")
    with pytest.raises(ModelClassError, match="NoSuchBertModel"):
        registry.load_model("odd")
    assert list((repo / ".mreg" / "tmp").iterdir()) == []


def test_a_tampered_cache_file_of_a_transformers_model_raises_the_integrity_error(
    repo: Path,
) -> None:
    registry = ModelRegistry()
    registry.register_huggingface_model("bert", tiny_bert(), tiny_tokenizer())
    data = sorted((repo / ".mreg" / "cache" / "data").rglob("*.lance"))
    raw = bytearray(data[0].read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data[0].write_bytes(bytes(raw))
    with pytest.raises(ModelIntegrityError, match="corrupt in cache"):
        registry.load_model("bert")


def test_a_tokenizer_with_another_format_or_a_non_transformers_model_is_refused(
    repo: Path, tmp_path: Path
) -> None:
    registry = ModelRegistry()
    folder = tmp_path / "exported"
    tiny_bert().save_pretrained(folder)
    before = snapshot(repo), git(repo, "tag", "--list")
    with pytest.raises(RegistryError, match="kept with Transformers models only"):
        registry.register_model("clf", train(3)[0], "pytorch", tokenizer=tiny_tokenizer())
    with pytest.raises(RegistryError, match="folder given by path"):
        registry.register_huggingface_model("bert", folder, tiny_tokenizer())
    with pytest.raises(RegistryError, match="cannot register a TinyClassifier as a Transformers"):
        registry.register_huggingface_model("clf", train(3)[0])
    assert (snapshot(repo), git(repo, "tag", "--list")) == before
