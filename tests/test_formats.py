"""Each format comes back from checkout as the manifest promises."""

from __future__ import annotations

import hashlib
import tomllib

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from helpers import make_pth, make_safetensors, make_table, make_tensors, restore_from_cache

import mreg


def sha256(path) -> str:  # type: ignore[no-untyped-def]
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_safetensors_comes_back_byte_for_byte_and_says_so(repo, run):
    path = make_safetensors(repo / "model.safetensors", metadata={"author": "tests"})
    original = sha256(path)
    assert run("add", "model.safetensors").exit_code == 0
    manifest = tomllib.loads((repo / "model.safetensors.mreg.toml").read_text())
    assert manifest["source"]["restore"] == "exact"

    restore_from_cache(repo, run, "model.safetensors")

    assert sha256(path) == original


def test_safetensors_with_gaps_is_restored_as_a_clean_file_with_equal_tensors(repo, run):
    from safetensors import safe_open
    from safetensors.numpy import load_file

    path = make_safetensors(repo / "m.safetensors", metadata={"k": "v"})
    # Rewrite the header so one tensor starts after a gap: valid, but not reproducible by bytes.
    raw = path.read_bytes()
    header_len = int.from_bytes(raw[:8], "little")
    header = raw[8 : 8 + header_len].decode()
    import json

    parsed = json.loads(header)
    data = raw[8 + header_len :]
    for name, spec in parsed.items():
        if name != "__metadata__":
            spec["data_offsets"] = [spec["data_offsets"][0] + 8, spec["data_offsets"][1] + 8]
    new_header = json.dumps(parsed).encode()
    new_header += b" " * (-len(new_header) % 8)
    path.write_bytes(len(new_header).to_bytes(8, "little") + new_header + b"\0" * 8 + data)
    expected = make_tensors(0)

    assert run("add", "m.safetensors").exit_code == 0
    manifest = tomllib.loads((repo / "m.safetensors.mreg.toml").read_text())
    assert manifest["source"]["restore"] == "equivalent"
    restore_from_cache(repo, run, "m.safetensors")

    restored = load_file(str(path))
    assert restored.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(restored[name], expected[name])
    with safe_open(str(path), "np") as handle:
        assert handle.metadata() == {"k": "v"}


def test_state_dict_pth_restores_equal_tensors_loadable_with_weights_only(repo, run):
    import torch

    make_pth(repo / "net.pth")
    expected = torch.load(repo / "net.pth", weights_only=True)
    assert run("add", "net.pth").exit_code == 0

    restore_from_cache(repo, run, "net.pth")

    restored = torch.load(repo / "net.pth", weights_only=True)
    assert list(restored) == list(expected)
    for name, tensor in expected.items():
        assert torch.equal(restored[name], tensor)


def test_nested_checkpoint_keeps_plain_values_and_structure(repo, run):
    import torch

    make_pth(repo / "ckpt.pt", checkpoint=True)
    assert run("add", "ckpt.pt").exit_code == 0

    restore_from_cache(repo, run, "ckpt.pt")

    restored = torch.load(repo / "ckpt.pt", weights_only=True)
    assert restored["epoch"] == 3
    assert restored["lr"] == 0.01
    assert restored["name"] == "run-1"
    assert restored["betas"] == (0.9, 0.999)
    tensors = make_tensors(0)
    for name, array in tensors.items():
        np.testing.assert_array_equal(restored["model"][name].numpy(), array)


def test_bfloat16_and_scalar_tensors_survive_the_round_trip(repo, run):
    import torch

    state = {
        "w": torch.randn(4, 4).to(torch.bfloat16),
        "step": torch.tensor(7),
        "empty": torch.zeros(0, 3),
        "mask": torch.tensor([True, False]),
    }
    torch.save(state, repo / "mixed.pth")
    assert run("add", "mixed.pth").exit_code == 0

    loaded = mreg.load_state_dict("mixed")
    restore_from_cache(repo, run, "mixed.pth")
    restored = torch.load(repo / "mixed.pth", weights_only=True)

    for name, tensor in state.items():
        assert loaded[name].dtype == tensor.dtype
        assert torch.equal(loaded[name], tensor)
        assert torch.equal(restored[name], tensor)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_tables_restore_with_equal_rows(repo, run, suffix):
    path = make_table(repo / f"table{suffix}", rows=250)
    read = pq.read_table if suffix == ".parquet" else pacsv.read_csv
    expected = read(path)
    assert run("add", path.name).exit_code == 0

    restore_from_cache(repo, run, path.name)

    assert read(path).equals(expected)
    assert mreg.open("table").to_table().equals(expected)


def test_manifest_records_tensor_table_and_parameter_count(repo, run):
    make_safetensors(repo / "m.safetensors", layers=2, width=8)
    assert run("add", "m.safetensors", "--meta", "task=demo").exit_code == 0
    manifest = tomllib.loads((repo / "m.safetensors.mreg.toml").read_text())

    assert manifest["model"]["parameters"] == 2 * (8 * 8 + 8)
    assert manifest["model"]["dtypes"] == ["float32"]
    names = [t["name"] for t in manifest["model"]["tensors"]]
    assert sorted(names) == sorted(make_tensors(0, layers=2, width=8))
    assert all(len(t["digest"]) == 64 for t in manifest["model"]["tensors"])
    assert manifest["meta"] == {"task": "demo"}
    for entry in manifest["lance"]["files"]:
        data = (repo / ".mreg" / "cache" / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["size"]


def test_manifest_is_deterministic_and_lists_one_tensor_per_line(repo, run):
    make_safetensors(repo / "m.safetensors")
    assert run("add", "m.safetensors").exit_code == 0
    first = (repo / "m.safetensors.mreg.toml").read_text()
    (repo / "m.safetensors.mreg.toml").unlink()
    assert run("add", "m.safetensors").exit_code == 0
    second = (repo / "m.safetensors.mreg.toml").read_text()

    tensor_lines = [
        line for line in second.splitlines() if line.strip().startswith('{ name = "layers')
    ]
    assert len(tensor_lines) == len(make_tensors(0))
    # Lance names its data files at random, so only their lines may differ between two adds.
    differing = [a for a, b in zip(first.splitlines(), second.splitlines(), strict=True) if a != b]
    assert all("lance" in line or "data/" in line for line in differing)
