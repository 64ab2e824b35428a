"""``mreg diff`` of a folder artifact, whatever its format, lists the files added, removed and
changed between two versions, as DVC's diff does (read from the manifests in git alone)."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from helpers import added, commit_all


def image(path: Path, seed: int) -> None:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (8, 12, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, "PNG")


def images(folder: Path, version: int) -> None:
    folder.mkdir(exist_ok=True)
    for p in folder.iterdir():
        p.unlink()
    names = {1: {"a": 1, "b": 2, "c": 3}, 2: {"a": 1, "c": 4, "d": 5}}[version]
    for name, seed in names.items():
        image(folder / f"{name}.png", seed)


def parquet_dir(folder: Path, version: int) -> None:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    parts = {1: {"p0": 0, "p1": 10, "p2": 20}, 2: {"p0": 0, "p2": 30, "p3": 40}}[version]
    for name, start in parts.items():
        table = pa.table({"x": pa.array(range(start, start + 10), pa.int64())})
        pq.write_table(table, folder / f"{name}.parquet")


def hf_dataset(folder: Path, version: int) -> None:
    import datasets

    shutil.rmtree(folder, ignore_errors=True)
    rows = {"x": list(range(20 if version == 1 else 30))}
    datasets.Dataset.from_dict(rows).save_to_disk(str(folder), num_shards=2 if version == 1 else 1)


def transformers(folder: Path, version: int) -> None:
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(version)
    config = BertConfig(
        vocab_size=50, hidden_size=8, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=16, max_position_embeddings=16,
    )  # fmt: skip
    BertModel(config).save_pretrained(str(folder))
    extra = folder / ("v1.txt" if version == 1 else "v2.txt")
    for old in folder.glob("v*.txt"):
        old.unlink()
    extra.write_text(f"notes {version}\n")


def listing(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.parametrize(
    "build", [images, parquet_dir, hf_dataset, transformers], ids=lambda b: b.__name__
)
def test_diff_of_a_folder_lists_the_files_added_removed_and_changed(
    repo: Path, run, build: Callable[[Path, int], None]
) -> None:  # type: ignore[no-untyped-def]
    folder = repo / "things"
    build(folder, 1)
    added(run, folder)
    commit_all(repo, "v1")
    before = listing(folder)
    build(folder, 2)
    added(run, folder)
    after = listing(folder)

    result = run("diff", "--json")

    assert result.exit_code == 0, result.stderr
    [change] = json.loads(result.stdout)["changes"]
    files = {line.split(" ")[2].rstrip(":"): line[0] for line in change["details"]
             if line[2:].startswith("file ")}  # fmt: skip
    expected = {f"things/{p}": "+" for p in after.keys() - before.keys()}
    expected |= {f"things/{p}": "-" for p in before.keys() - after.keys()}
    expected |= {f"things/{p}": "~" for p in before.keys() & after.keys() if before[p] != after[p]}
    assert files == expected
    assert set(expected.values()) >= {"+", "-"}
