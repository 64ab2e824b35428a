"""Folders of Parquet files, flat or hive-partitioned: equal rows and the same key=value folders
come back from checkout, appends work, and folders in other layouts are refused."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers import (
    added,
    assert_refused,
    manifest_path,
    refused_without_trace,
    restore_from_cache,
    snapshot,
)

import mreg


def make_rows(rows: int = 120, start: int = 0) -> pa.Table:
    ids = range(start, start + rows)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "score": [i / 4 for i in ids],
            "year": [2022 + i % 3 for i in ids],
            "city": [["paris", "new york", "são paulo"][i % 3] for i in ids],
        }
    )


def make_partitioned(folder: Path, table: pa.Table, keys: list[str]) -> Path:
    pq.write_to_dataset(table, folder, partition_cols=keys)
    return folder


def read_folder(folder: Path) -> pa.Table:
    table = ds.dataset(folder, format="parquet", partitioning="hive").to_table()
    return table.sort_by("id")


def partition_folders(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_dir()}


def test_a_hive_partitioned_folder_comes_back_with_equal_rows_and_the_same_partitions(repo, run):
    folder = make_partitioned(repo / "sales", make_rows(), ["year", "city"])
    expected, folders = read_folder(folder), partition_folders(folder)
    added(run, repo / "sales")

    manifest = tomllib.loads(manifest_path(folder).read_text())
    assert manifest["source"]["format"] == "parquet_dir"
    schema = json.loads(manifest["lance"]["schema"])
    assert json.loads(schema["metadata"]["mreg.parquet_dir"]) == {"partitioning": ["year", "city"]}
    restore_from_cache(repo, run, "sales")

    assert read_folder(folder).equals(expected)
    assert partition_folders(folder) == folders
    assert mreg.open("sales").to_table().sort_by("id").equals(expected)


def test_a_flat_folder_of_parquet_files_comes_back_with_equal_rows(repo, run):
    folder = repo / "shards"
    folder.mkdir()
    for n in range(3):
        pq.write_table(make_rows(50, start=50 * n), folder / f"part-{n}.parquet")
    added(run, repo / "shards")

    restore_from_cache(repo, run, "shards")

    table = ds.dataset(folder, format="parquet").to_table()
    assert table.column("id").to_pylist() == list(range(150))
    assert partition_folders(folder) == set()


def test_a_partitioned_folder_can_be_appended_and_keeps_its_partitions(repo, run):
    make_partitioned(repo / "sales", make_rows(60), ["year"])
    make_partitioned(repo / "batch", make_rows(30, start=60), ["year"])
    added(run, repo / "sales")

    added(run, repo / "batch", "--name", "sales", "--mode", "append")

    assert read_folder(repo / "sales").column("id").to_pylist() == list(range(90))
    assert partition_folders(repo / "sales") == {"year=2022", "year=2023", "year=2024"}
    assert mreg.open("sales").count_rows() == 90


def test_appending_a_folder_with_other_columns_is_refused(repo, run):
    make_partitioned(repo / "sales", make_rows(60), ["year"])
    make_partitioned(repo / "batch", make_rows(30).drop_columns(["score"]), ["year"])
    added(run, repo / "sales")
    before = snapshot(repo)

    assert_refused(
        run("add", "batch", "--name", "sales", "--mode", "append"), "cannot append batch", "differ"
    )

    assert snapshot(repo) == before


def write_bad_folder(folder: Path, case: str) -> None:
    folder.mkdir()
    pq.write_table(make_rows(10), folder / "a.parquet")
    if case == "other-file":
        (folder / "README.md").write_text("not data")
    elif case == "not-hive":
        (folder / "extra").mkdir()
        pq.write_table(make_rows(10), folder / "extra" / "b.parquet")
    elif case == "mixed-layouts":
        (folder / "year=2020").mkdir()
        pq.write_table(make_rows(10), folder / "year=2020" / "b.parquet")
    elif case == "other-columns":
        pq.write_table(make_rows(10).drop_columns(["city"]), folder / "b.parquet")
    elif case == "corrupt":
        data = (folder / "a.parquet").read_bytes()
        (folder / "b.parquet").write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize(
    ("case", "words"),
    [
        ("not-hive", ["extra/b.parquet", "'extra' is not a hive partition"]),
        ("mixed-layouts", ["mixes partition layouts", "year=2020/b.parquet"]),
        ("other-columns", ["b.parquet has columns", "differ from those of a.parquet"]),
        ("corrupt", ["b.parquet", "not a Parquet file"]),
    ],
)
def test_a_folder_in_another_layout_is_refused_naming_the_file(repo, run, case, words):
    folder = repo / "data"
    write_bad_folder(folder, case)

    refused_without_trace(repo, run, folder, *words)


def test_a_folder_of_parquet_and_other_files_is_kept_as_opaque_bytes(repo, run):
    folder = repo / "data"
    write_bad_folder(folder, "other-file")

    result = run("add", "data")

    assert result.exit_code == 0, result.stderr
    assert "tracked as opaque chunks (blob_dir)" in result.stdout
