"""Zip archives holding a dataset: the dataset comes back inside a new archive, and archives that
could write outside their folder, expand without bound or hold no dataset are refused."""

from __future__ import annotations

import io
import json
import stat
import struct
import tempfile
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from helpers import (
    added,
    assert_refused,
    make_safetensors,
    make_table,
    refused_without_trace,
    restore_from_cache,
    snapshot,
)

import mreg


@pytest.fixture(autouse=True)
def scratch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Archives are extracted under this folder, so tests can see that nothing is left there."""
    folder = tmp_path / "scratch"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def make_zip(path: Path, members: dict[str, bytes | Path]) -> Path:
    """An archive of ``members``: name -> bytes, or a file or folder to store under that name."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in members.items():
            if isinstance(content, bytes):
                archive.writestr(name, content)
            elif content.is_dir():
                for file in sorted(p for p in content.rglob("*") if p.is_file()):
                    archive.write(file, f"{name}/{file.relative_to(content).as_posix()}")
            else:
                archive.write(content, name)
    return path


def csv_bytes(rows: int = 50, start: int = 0) -> bytes:
    buffer = io.BytesIO()
    table = pa.table({"id": range(start, start + rows), "label": [f"r{i}" for i in range(rows)]})
    pacsv.write_csv(table, buffer)
    return buffer.getvalue()


# -- archives that come back ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("member", "content", "read"),
    [
        ("train.csv", csv_bytes(), lambda b: pacsv.read_csv(io.BytesIO(b))),
        ("lines.txt", b"one\n two \n\nthree", lambda b: b),
        (
            "rows.jsonl",
            b'{"a": 1, "b": "x"}\n{"a": 2, "b": null}\n',
            lambda b: [json.loads(line) for line in b.splitlines()],
        ),
        ("rows.json", b'[{"a": 1}, {"a": 2.5}]', lambda b: json.loads(b)),
        ("dataset/v1/train.csv", csv_bytes(), lambda b: pacsv.read_csv(io.BytesIO(b))),
    ],
    ids=["csv", "txt", "jsonl", "json", "csv-in-folders"],
)
def test_an_archive_holding_one_file_comes_back_holding_equal_rows(
    repo, run, scratch, member, content, read
):
    path = make_zip(repo / "data.zip", {member: content})
    added(run, repo / "data.zip")
    manifest = json.loads(mreg.open("data").schema.metadata[b"mreg.zip"])
    assert manifest["member"] == member

    restore_from_cache(repo, run, "data.zip")

    with zipfile.ZipFile(path) as archive:
        assert archive.namelist() == [member]
        assert read(archive.read(member)) == read(content)
    assert list(scratch.iterdir()) == []


def test_an_archive_of_a_parquet_file_comes_back_with_equal_rows(repo, run):
    table = pq.read_table(make_table(repo / "t.parquet"))
    make_zip(repo / "data.zip", {"table.parquet": repo / "t.parquet"})
    added(run, repo / "data.zip")

    restore_from_cache(repo, run, "data.zip")

    with zipfile.ZipFile(repo / "data.zip") as archive:
        assert pq.read_table(io.BytesIO(archive.read("table.parquet"))).equals(table)


@pytest.mark.parametrize("member", ["sales", ""], ids=["in-a-folder", "at-the-top-level"])
def test_an_archive_of_a_partitioned_parquet_folder_keeps_its_partitions(
    repo, run, tmp_path, member
):
    source = tmp_path / "sales"
    table = pa.table({"id": range(30), "year": [2020 + i % 3 for i in range(30)]})
    pq.write_to_dataset(table, source, partition_cols=["year"])
    members: dict[str, bytes | Path] = (
        {"sales": source}
        if member
        else {p.relative_to(source).as_posix(): p for p in source.rglob("*.parquet")}
    )
    make_zip(repo / "sales.zip", members)
    added(run, repo / "sales.zip")

    restore_from_cache(repo, run, "sales.zip")

    out = tmp_path / "out"
    with zipfile.ZipFile(repo / "sales.zip") as archive:
        names = archive.namelist()
        archive.extractall(out)
    prefix = "sales/" if member else ""
    assert {n.rsplit("/", 1)[0] for n in names} == {f"{prefix}year={y}" for y in (2020, 2021, 2022)}
    restored = ds.dataset(out / member, partitioning="hive").to_table().sort_by("id")
    assert restored.column("id").to_pylist() == list(range(30))
    assert restored.column("year").to_pylist() == [2020 + i % 3 for i in range(30)]


def test_an_archive_of_an_image_folder_goes_through_the_image_converter(repo, run, tmp_path):
    from mreg.converters import all_converters

    image = pytest.importorskip("PIL.Image")
    if "images" not in all_converters():
        pytest.skip("no image folder converter")
    pets = tmp_path / "pets"
    for label, color in (("cat", "red"), ("dog", "blue")):
        (pets / label).mkdir(parents=True)
        image.new("RGB", (4, 3), color).save(pets / label / "1.png")
    make_zip(repo / "pets.zip", {"pets": pets})
    added(run, repo / "pets.zip")
    assert mreg.open("pets").to_table().column("label").to_pylist() == ["cat", "dog"]

    restore_from_cache(repo, run, "pets.zip")

    with zipfile.ZipFile(repo / "pets.zip") as archive:
        assert sorted(archive.namelist()) == ["pets/cat/1.png", "pets/dog/1.png"]
        assert archive.read("pets/dog/1.png") == (pets / "dog" / "1.png").read_bytes()


def test_rows_appended_to_an_archive_come_back_inside_it(repo, run):
    make_zip(repo / "data.zip", {"train.csv": csv_bytes(50)})
    (repo / "more.csv").write_bytes(csv_bytes(10, start=50))
    added(run, repo / "data.zip")

    added(run, repo / "more.csv", "--name", "data", "--mode", "append")

    with zipfile.ZipFile(repo / "data.zip") as archive:
        rows = pacsv.read_csv(io.BytesIO(archive.read("train.csv")))
    assert rows.column("id").to_pylist() == list(range(60))


def test_an_archive_can_be_appended_to_a_dataset(repo, run):
    (repo / "train.csv").write_bytes(csv_bytes(50))
    make_zip(repo / "batch.zip", {"batch.csv": csv_bytes(10, start=50)})
    added(run, repo / "train.csv")

    added(run, repo / "batch.zip", "--name", "train", "--mode", "append")

    assert pacsv.read_csv(repo / "train.csv").column("id").to_pylist() == list(range(60))


# -- archives that are refused --------------------------------------------------------------


def zip_with_info(path: Path, info: zipfile.ZipInfo, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(info, data)
    return path


@pytest.mark.parametrize(
    ("member", "why"),
    [
        ("../evil.csv", "leaves the archive's folder"),
        ("data/../../evil.csv", "leaves the archive's folder"),
        ("..\\evil.csv", "leaves the archive's folder"),
        ("/etc/evil.csv", "absolute path"),
        ("C:/evil.csv", "names a drive"),
    ],
)
def test_a_member_that_would_land_outside_the_folder_is_refused(repo, run, scratch, member, why):
    path = zip_with_info(repo / "evil.zip", zipfile.ZipInfo(member), csv_bytes())

    refused_without_trace(repo, run, path, f"member '{member}'", why)

    assert not (repo.parent / "evil.csv").exists()
    assert list(scratch.iterdir()) == []


def test_a_symbolic_link_member_is_refused(repo, run):
    info = zipfile.ZipInfo("data.csv")
    info.external_attr = (stat.S_IFLNK | 0o777) << 16

    path = zip_with_info(repo / "link.zip", info, b"/etc/passwd")

    refused_without_trace(repo, run, path, "member 'data.csv'", "symbolic link")


def test_an_encrypted_member_is_refused(repo, run):
    path = make_zip(repo / "secret.zip", {"data.csv": csv_bytes()})
    data = bytearray(path.read_bytes())
    # zipfile cannot encrypt: set the "encrypted" flag bit in both headers instead.
    data[data.find(b"PK\x03\x04") + 6] |= 0x1
    data[data.find(b"PK\x01\x02") + 8] |= 0x1
    path.write_bytes(bytes(data))

    refused_without_trace(repo, run, path, "member 'data.csv'", "encrypted")


def test_a_member_that_expands_too_many_times_is_refused_as_a_zip_bomb(repo, run, scratch):
    path = make_zip(repo / "bomb.zip", {"zeros.csv": bytes(50 << 20)})

    refused_without_trace(repo, run, path, "member 'zeros.csv'", "zip bomb")

    assert list(scratch.iterdir()) == []


def test_an_archive_larger_than_the_limit_is_refused(repo, run, monkeypatch):
    monkeypatch.setenv("MREG_ZIP_MAX_BYTES", "1000")
    path = make_zip(repo / "big.zip", {"a.csv": csv_bytes(10), "b.csv": csv_bytes(200)})

    line = refused_without_trace(repo, run, path, "member 'b.csv'", "past 1,000 bytes")

    assert "MREG_ZIP_MAX_BYTES" in line


def test_the_ratio_limit_can_be_lowered_through_the_environment(repo, run, monkeypatch):
    monkeypatch.setenv("MREG_ZIP_MAX_RATIO", "2")
    path = make_zip(repo / "text.zip", {"lines.txt": b"the same line\n" * 200_000})

    refused_without_trace(repo, run, path, "member 'lines.txt'", "more than 2 times")


def test_an_archive_whose_headers_understate_a_member_is_refused(repo, run, scratch):
    path = make_zip(repo / "liar.zip", {"zeros.csv": b"a\n" + bytes(2 << 20)})
    data = bytearray(path.read_bytes())
    # Claim 100 bytes in the local header and in the central directory: small enough to pass
    # every check made on the headers.
    local = data.find(b"PK\x03\x04")
    central = data.find(b"PK\x01\x02")
    struct.pack_into("<I", data, local + 22, 100)
    struct.pack_into("<I", data, central + 24, 100)
    path.write_bytes(bytes(data))

    refused_without_trace(repo, run, path, "member 'zeros.csv'", "cannot be extracted")

    assert list(scratch.iterdir()) == []


@pytest.mark.parametrize(
    ("members", "words"),
    [
        ({"notes.xyz": b"hello"}, ["notes.xyz", "unsupported format"]),
        (
            {"a.csv": b"a\n1\n", "b.txt": b"x\n"},
            ["holds a.csv, b.txt", "no dataset format mreg knows"],
        ),
        ({"inner.zip": b"PK\x05\x06" + bytes(18)}, ["inner.zip", "archives inside archives"]),
        ({"bad.csv": b"a,b\n1,2\n3\n"}, ["bad.csv is not valid CSV", "columns"]),
        ({}, ["holds no files"]),
    ],
    ids=["unknown-suffix", "mixed-files", "nested-archive", "ragged-csv", "empty"],
)
def test_an_archive_without_a_supported_dataset_is_refused(repo, run, scratch, members, words):
    path = make_zip(repo / "data.zip", members)

    refused_without_trace(repo, run, path, *words)

    assert list(scratch.iterdir()) == []


def test_an_archive_holding_a_model_is_refused(repo, run, tmp_path):
    model = make_safetensors(tmp_path / "m.safetensors")
    path = make_zip(repo / "model.zip", {"m.safetensors": model})

    refused_without_trace(repo, run, path, "m.safetensors", "is a model")


def test_a_file_that_is_not_a_zip_archive_is_refused(repo, run):
    path = repo / "fake.zip"
    path.write_bytes(b"just some text, not an archive")

    refused_without_trace(repo, run, path, "not a zip archive")


def test_a_limit_that_is_not_a_number_is_refused(repo, run, monkeypatch):
    monkeypatch.setenv("MREG_ZIP_MAX_BYTES", "lots")
    make_zip(repo / "data.zip", {"train.csv": csv_bytes()})
    before = snapshot(repo)

    assert_refused(run("add", "data.zip"), "MREG_ZIP_MAX_BYTES", "'lots'")

    assert snapshot(repo) == before
