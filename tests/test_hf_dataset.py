"""Hugging Face `datasets` folders (save_to_disk) are tracked as one table and come back equal."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import pyarrow as pa
import pytest

import mreg

datasets = pytest.importorskip("datasets")


def manifest(path: Path) -> dict:  # type: ignore[type-arg]
    return tomllib.loads(path.read_text())


def checkout_again(repo: Path, run, artifact: str) -> None:  # type: ignore[no-untyped-def]
    import shutil

    shutil.rmtree(repo / artifact)
    result = run("checkout")
    assert result.exit_code == 0, result.stderr


def rich_features() -> datasets.Features:
    return datasets.Features(
        {
            "text": datasets.Value("string"),
            "label": datasets.ClassLabel(names=["cat", "dog"]),
            "tokens": datasets.List(datasets.Value("int32")),
            "grid": datasets.Array2D((2, 2), "float32"),
            "meta": {"score": datasets.Value("float64"), "source": datasets.Value("string")},
        }
    )


def rich_rows(count: int, start: int = 0) -> dict[str, list]:  # type: ignore[type-arg]
    numbers = range(start, start + count)
    return {
        "text": [f"row {i}" for i in numbers],
        "label": [i % 2 for i in numbers],
        "tokens": [list(range(i % 4)) for i in numbers],
        "grid": [[[i, i + 1], [i + 2, i + 3]] for i in numbers],
        "meta": [{"score": i / 2, "source": f"s{i}"} for i in numbers],
    }


def png(colour: str, size: tuple[int, int] = (4, 3)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, format="PNG")
    return out.getvalue()


def test_a_saved_dataset_comes_back_with_equal_rows_and_features(repo, run):
    features = rich_features()
    original = datasets.Dataset.from_dict(rich_rows(10), features=features)
    original.save_to_disk(str(repo / "ds"))

    added = run("add", "ds")
    assert added.exit_code == 0, added.stderr
    recorded = manifest(repo / "ds.mreg.toml")
    assert recorded["source"]["format"] == "hf_dataset"
    assert recorded["source"]["restore"] == "equivalent"
    assert recorded["rows"] == 10
    checkout_again(repo, run, "ds")

    restored = datasets.load_from_disk(str(repo / "ds"))
    assert isinstance(restored, datasets.Dataset)
    assert restored.features == features
    assert restored.to_dict() == original.to_dict()


def test_the_features_travel_in_the_manifest_schema(repo, run):
    datasets.Dataset.from_dict(rich_rows(2), features=rich_features()).save_to_disk(
        str(repo / "ds")
    )
    assert run("add", "ds").exit_code == 0

    schema = json.loads(manifest(repo / "ds.mreg.toml")["lance"]["schema"])
    recipe = json.loads(schema["metadata"]["mreg.hf_dataset"])

    assert recipe["layout"] == "dataset"
    assert datasets.Features.from_dict(recipe["features"]) == rich_features()


def test_a_dataset_dict_is_one_table_with_a_split_column_and_comes_back_per_split(repo, run):
    features = rich_features()
    original = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(rich_rows(6), features=features),
            "test": datasets.Dataset.from_dict(rich_rows(3, start=100), features=features),
        }
    )
    original.save_to_disk(str(repo / "dd"))

    assert run("add", "dd").exit_code == 0
    columns = manifest(repo / "dd.mreg.toml")["dataset"]["columns"]
    assert columns[0] == {"name": "split", "type": "string"}
    table = mreg.open("dd").to_table()
    assert table.column("split").to_pylist() == ["train"] * 6 + ["test"] * 3
    checkout_again(repo, run, "dd")

    restored = datasets.load_from_disk(str(repo / "dd"))
    assert isinstance(restored, datasets.DatasetDict)
    assert list(restored) == ["train", "test"]
    for split in ("train", "test"):
        assert restored[split].features == features
        assert restored[split].to_dict() == original[split].to_dict()


def test_a_named_split_saved_alone_keeps_its_name(repo, run):
    original = datasets.Dataset.from_dict({"x": [1, 2, 3]}, split=datasets.Split.VALIDATION)
    original.save_to_disk(str(repo / "val"))

    assert run("add", "val").exit_code == 0
    checkout_again(repo, run, "val")

    restored = datasets.load_from_disk(str(repo / "val"))
    assert str(restored.split) == "validation"
    assert restored["x"] == [1, 2, 3]


def test_images_are_stored_as_their_encoded_bytes_and_come_back(repo, run):
    pytest.importorskip("PIL")
    images = [png("red"), png("green", (2, 5)), None, png("blue")]
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("int64")})
    original = datasets.Dataset.from_dict(
        {
            "image": [None if b is None else {"bytes": b, "path": None} for b in images],
            "label": [0, 1, 2, 3],
        },
        features=features,
    )
    original.save_to_disk(str(repo / "pics"))

    assert run("add", "pics").exit_code == 0
    table = mreg.open("pics").to_table()
    assert table.schema.field("image").type == pa.large_binary()
    assert table.column("image").to_pylist() == images
    checkout_again(repo, run, "pics")

    restored = datasets.load_from_disk(str(repo / "pics"))
    assert restored.features == features
    assert restored[1]["image"].size == (2, 5)
    assert restored[2]["image"] is None
    raw = restored.cast_column("image", datasets.Image(decode=False))
    assert [item and item["bytes"] for item in raw["image"]] == images


def point_images_at_files(folder: Path, column: str, paths: list[str]) -> None:
    """Rewrite a saved dataset's shard so each image is known by its file's path only
    (`save_to_disk` embeds local files, so such a folder comes from elsewhere)."""
    shard = next(folder.glob("*.arrow"))
    with pa.memory_map(str(shard)) as source:
        table = pa.ipc.open_stream(source).read_all()
    path_only = pa.StructArray.from_arrays(
        [pa.nulls(len(paths), pa.binary()), pa.array(paths)], ["bytes", "path"]
    )
    table = table.set_column(table.schema.get_field_index(column), column, path_only)
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)


def saved_images_by_path(repo: Path, tmp_path: Path) -> list[Path]:
    """A dataset folder ``pics`` whose images are files in its ``images/`` folder."""
    pytest.importorskip("PIL")
    features = datasets.Features({"image": datasets.Image()})
    rows = {"image": [{"bytes": png("white"), "path": None}] * 2}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(repo / "pics"))
    (repo / "pics" / "images").mkdir()
    files = []
    for i, colour in enumerate(["red", "blue"]):
        path = repo / "pics" / "images" / f"img{i}.png"
        path.write_bytes(png(colour))
        files.append(path)
    point_images_at_files(repo / "pics", "image", [f"images/img{i}.png" for i in range(2)])
    return files


def test_an_image_known_only_by_its_path_is_read_from_that_file(repo, run, tmp_path):
    files = saved_images_by_path(repo, tmp_path)

    assert run("add", "pics").exit_code == 0

    stored = mreg.open("pics").to_table().column("image").to_pylist()
    assert stored == [p.read_bytes() for p in files]


def test_an_image_whose_file_is_gone_is_refused_or_skipped(repo, run, tmp_path):
    files = saved_images_by_path(repo, tmp_path)
    files[1].unlink()

    refused = run("add", "pics")

    assert refused.exit_code != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "image pics[1].image is not embedded" in lines[0]
    assert not (repo / "pics.mreg.toml").exists()

    skipped = run("add", "pics", "--skip-bad")

    assert skipped.exit_code == 0, skipped.stderr
    assert "skipped 1 unreadable record(s): pics[1].image" in skipped.stderr
    assert manifest(repo / "pics.mreg.toml")["rows"] == 1


def test_a_folder_with_the_markers_but_no_readable_dataset_is_refused(repo, run):
    (repo / "fake").mkdir()
    (repo / "fake" / "state.json").write_text("{}")
    (repo / "fake" / "dataset_info.json").write_text("not json")

    result = run("add", "fake")

    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "fake/ is not a readable `datasets` folder" in lines[0]
    assert not (repo / "fake.mreg.toml").exists()


def test_splits_with_different_columns_are_refused(repo, run):
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict({"x": [1]}),
            "test": datasets.Dataset.from_dict({"y": ["a"]}),
        }
    ).save_to_disk(str(repo / "dd"))

    result = run("add", "dd")

    assert result.exit_code != 0
    assert "split 'test' has other columns or types than 'train'" in result.stderr
    assert not (repo / "dd.mreg.toml").exists()


def test_a_dataset_dict_with_a_split_column_of_its_own_is_refused(repo, run):
    datasets.DatasetDict({"train": datasets.Dataset.from_dict({"split": ["a"]})}).save_to_disk(
        str(repo / "dd")
    )

    result = run("add", "dd")

    assert result.exit_code != 0
    assert "has a column named 'split'" in result.stderr
