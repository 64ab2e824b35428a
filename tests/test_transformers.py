"""Hugging Face Transformers folders: weights from every shard become tensor rows, every other
file is kept byte-for-byte, and after checkout ``from_pretrained`` loads equal weights."""

from __future__ import annotations

import json
import pickle
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from helpers import Marker, assert_refused, snapshot

from mreg.converters.base import ReadOptions
from mreg.converters.transformers_folder import CONVERTER
from mreg.hashing import sha256_tree

WORDS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "model", "is", "versioned", "in"]
TEXT = "the model is versioned in git"
LAYOUTS = ("safetensors", "safetensors-sharded", "bin", "bin-sharded")


@dataclass
class Berts:
    """Saved copies of one tiny BERT in every layout, and what loading them must give."""

    root: Path
    state: dict[str, Any]
    input_ids: list[int]


@pytest.fixture(autouse=True)
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def berts(tmp_path_factory: pytest.TempPathFactory) -> Berts:
    """One tiny BERT and a tokenizer built offline, saved once per layout."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        import torch
        from transformers import BertConfig, BertModel, BertTokenizer

        torch.manual_seed(0)
        config = BertConfig(
            vocab_size=99,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=37,
        )
        model = BertModel(config)
        tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(WORDS)})
        root = tmp_path_factory.mktemp("berts")
        model.save_pretrained(root / "safetensors")
        model.save_pretrained(root / "safetensors-sharded", max_shard_size="50KB")
        state = {k: v.clone() for k, v in model.state_dict().items()}
        save_bin(root / "bin", config, state, shards=1)
        save_bin(root / "bin-sharded", config, state, shards=2)
        for layout in LAYOUTS:
            tokenizer.save_pretrained(root / layout)
            (root / layout / "README.md").write_text("# tiny bert\n")
            (root / layout / "notes").mkdir()
            (root / layout / "notes" / "training.txt").write_text("two layers\n")
        return Berts(root, state, tokenizer(TEXT)["input_ids"])


def save_bin(folder: Path, config: Any, state: dict[str, Any], shards: int) -> None:
    """What older transformers wrote: pytorch_model.bin, or shards with an index."""
    import torch

    config.save_pretrained(folder)
    if shards == 1:
        torch.save(state, folder / "pytorch_model.bin")
        return
    names = list(state)
    weight_map = {}
    for number in range(shards):
        shard = f"pytorch_model-{number + 1:05d}-of-{shards:05d}.bin"
        part = names[number::shards]
        torch.save({name: state[name] for name in part}, folder / shard)
        weight_map.update(dict.fromkeys(part, shard))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "pytorch_model.bin.index.json").write_text(json.dumps(index, indent=2))


def place(berts: Berts, layout: str, repo: Path) -> Path:
    return Path(shutil.copytree(berts.root / layout, repo / "bert"))


def manifest_of(folder: Path) -> dict[str, Any]:
    return tomllib.loads(folder.with_name(folder.name + ".mreg.toml").read_text())


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


def checkout_again(folder: Path, run) -> None:  # type: ignore[no-untyped-def]
    shutil.rmtree(folder)
    result = run("checkout")
    assert result.exit_code == 0, result.stderr


def assert_loads_like_the_original(folder: Path, berts: Berts) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    loaded = AutoModel.from_pretrained(folder).state_dict()
    assert loaded.keys() == berts.state.keys()
    for name, tensor in berts.state.items():
        assert torch.equal(loaded[name], tensor), name
    assert AutoTokenizer.from_pretrained(folder)(TEXT)["input_ids"] == berts.input_ids


@pytest.mark.parametrize("layout", ["safetensors", "safetensors-sharded"])
def test_a_safetensors_folder_comes_back_byte_for_byte_and_loads_equal_weights(
    repo, run, berts, layout
):
    folder = place(berts, layout, repo)
    digest = sha256_tree(folder)
    assert run("add", "bert").exit_code == 0
    manifest = manifest_of(folder)
    assert manifest["source"]["format"] == "transformers"
    assert manifest["source"]["restore"] == "exact"
    assert manifest["source"]["sha256"] == digest

    checkout_again(folder, run)

    assert sha256_tree(folder) == digest
    assert_loads_like_the_original(folder, berts)


@pytest.mark.parametrize("layout", ["bin", "bin-sharded"])
def test_a_pytorch_bin_folder_comes_back_with_equal_tensors_and_the_same_other_files(
    repo, run, berts, layout
):
    folder = place(berts, layout, repo)
    before = file_bytes(folder)
    assert run("add", "bert").exit_code == 0
    assert manifest_of(folder)["source"]["restore"] == "equivalent"

    checkout_again(folder, run)

    after = file_bytes(folder)
    assert after.keys() == before.keys()
    assert {k: v for k, v in after.items() if not k.endswith(".bin")} == {
        k: v for k, v in before.items() if not k.endswith(".bin")
    }
    assert_loads_like_the_original(folder, berts)


def test_the_manifest_lists_every_tensor_of_every_shard_and_the_other_files(repo, run, berts):
    folder = place(berts, "safetensors-sharded", repo)
    assert run("add", "bert").exit_code == 0
    model = manifest_of(folder)["model"]

    tensors = {t["name"]: (tuple(t["shape"]), t["dtype"]) for t in model["tensors"]}
    assert tensors == {k: (tuple(v.shape), "float32") for k, v in berts.state.items()}
    assert model["parameters"] == sum(v.numel() for v in berts.state.values())
    files = {f["path"] for f in model["files"]}
    assert {"config.json", "model.safetensors.index.json", "tokenizer.json"} <= files
    assert {"README.md", "notes/training.txt"} <= files
    assert not any(f.endswith(".safetensors") for f in files)


def test_describe_gives_architecture_parameters_dtypes_and_a_config_summary(berts):
    source = CONVERTER.read(berts.root / "safetensors", ReadOptions())

    info = CONVERTER.describe(source)

    assert info["architecture"] == "BertModel"
    assert info["parameters"] == str(sum(v.numel() for v in berts.state.values()))
    assert info["dtypes"] == "float32"
    assert info["model_type"] == "bert"
    assert info["hidden_size"] == "32"
    assert info["num_hidden_layers"] == "2"


def test_pytorch_bin_weights_beside_safetensors_are_kept_as_files_never_unpickled(repo, run, berts):
    folder = place(berts, "safetensors", repo)
    marker = repo.parent / "unpickled"
    # Not loadable with weights_only=True: any attempt to read it as weights would fail the add.
    (folder / "pytorch_model.bin").write_bytes(pickle.dumps(Marker(marker)))
    digest = sha256_tree(folder)
    assert run("add", "bert").exit_code == 0
    files = {f["path"] for f in manifest_of(folder)["model"]["files"]}
    assert "pytorch_model.bin" in files

    checkout_again(folder, run)

    assert sha256_tree(folder) == digest
    assert not marker.exists()


def test_a_pytorch_bin_that_is_not_plain_weights_is_refused_and_nothing_runs(repo, run, berts):
    folder = place(berts, "bin", repo)
    marker = repo.parent / "unpickled"
    import torch

    torch.save({"w": torch.zeros(2), "evil": Marker(marker)}, folder / "pytorch_model.bin")
    before = snapshot(repo)

    assert_refused(run("add", "bert"), "pytorch_model.bin", "weights_only")

    assert not marker.exists()
    assert snapshot(repo) == before


def test_a_config_json_that_is_not_json_is_refused(repo, run, berts):
    folder = place(berts, "safetensors", repo)
    (folder / "config.json").write_text('{"model_type": "bert",')
    before = snapshot(repo)

    assert_refused(run("add", "bert"), "bert/config.json", "not valid JSON")

    assert snapshot(repo) == before


def test_a_shard_listed_in_the_index_but_missing_is_refused(repo, run, berts):
    folder = place(berts, "safetensors-sharded", repo)
    (folder / "model-00002-of-00003.safetensors").unlink()
    before = snapshot(repo)

    assert_refused(
        run("add", "bert"),
        "model-00002-of-00003.safetensors",
        "listed in model.safetensors.index.json but missing",
    )

    assert snapshot(repo) == before


@pytest.mark.parametrize("link", ["tokenizer.json", "notes"])
def test_a_symbolic_link_in_the_folder_is_refused_and_never_followed(repo, run, berts, link):
    folder = place(berts, "safetensors", repo)
    outside = repo.parent / "outside"
    shutil.move(folder / link, outside)
    (folder / link).symlink_to(outside)
    before = snapshot(repo)

    assert_refused(run("add", "bert"), f"bert/{link}", "symbolic link")

    assert snapshot(repo) == before
    assert not (repo / ".mreg" / "cache" / "data").exists()
