"""Text datasets (.txt, .jsonl, .json): lines and rows come back from checkout, appends work, and
bad input is refused with the line or row at fault."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import pyarrow as pa
import pyarrow.json as pajson
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


def read_jsonl(path: Path) -> pa.Table:
    return pajson.read_json(path)


def read_json_array(path: Path) -> pa.Table:
    rows = json.loads(path.read_text())
    lines = "".join(json.dumps(row) + "\n" for row in rows)
    return pajson.read_json(io.BytesIO(lines.encode()))


ROWS = [
    {"id": 1, "name": "ada", "score": 0.5, "tags": ["a", "b"], "pos": {"x": 1, "y": 2}},
    {"id": 2, "name": "bob", "score": 1.25, "tags": [], "pos": {"x": 3, "y": None}},
    {"id": 3, "score": None, "tags": None, "seen": "2024-05-01 12:30:00"},
    {"id": 4, "name": "é ü 漢字", "score": -2, "tags": ["c"], "pos": None, "seen": None},
]


# -- .txt -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"first line\nsecond line\n",
        b"no newline at the end\nlast",
        b"  leading and trailing spaces \t\n\n\nafter blank lines\n",
        b"windows\r\nline endings\r\n",
        "unicode: é ü 漢字 \u2028 still one line\n".encode(),
        b"\n",
        b"",
    ],
    ids=[
        "lf",
        "no-final-newline",
        "spaces-and-blanks",
        "crlf",
        "unicode",
        "one-empty-line",
        "empty",
    ],
)
def test_a_text_file_comes_back_with_the_same_bytes_and_one_row_per_line(repo, run, content):
    path = repo / "notes.txt"
    path.write_bytes(content)
    lines = content.decode().replace("\r\n", "\n").split("\n")
    expected = lines[:-1] if content.endswith(b"\n") or not content else lines
    added(run, path)

    assert mreg.open("notes").to_table().column("text").to_pylist() == expected
    restore_from_cache(repo, run, "notes.txt")

    assert path.read_bytes() == content


def test_a_text_file_mixing_line_endings_comes_back_with_equal_lines(repo, run):
    path = repo / "mixed.txt"
    path.write_bytes(b"crlf first\r\nthen lf\nthen crlf again\r\n")
    added(run, path)
    manifest = tomllib.loads(manifest_path(path).read_text())
    assert manifest["source"]["restore"] == "equivalent"

    restore_from_cache(repo, run, "mixed.txt")

    assert path.read_bytes().split(b"\r\n") == [b"crlf first", b"then lf", b"then crlf again", b""]


def test_a_text_file_larger_than_a_block_with_a_line_longer_than_a_block_round_trips(repo, run):
    from mreg.converters.txt import BLOCK_SIZE

    long_line = "x" * (BLOCK_SIZE + 100)
    short = [f"line {i}" for i in range(200_000)]
    content = "\n".join([*short, long_line, *short]) + "\n"
    path = repo / "big.txt"
    path.write_text(content)
    added(run, path)

    table = mreg.open("big").to_table()
    assert table.num_rows == 2 * len(short) + 1
    assert table.column("text")[len(short)].as_py() == long_line
    restore_from_cache(repo, run, "big.txt")
    assert path.read_text() == content


def test_a_text_file_that_is_not_utf8_is_refused_naming_the_line(repo, run):
    path = repo / "latin1.txt"
    path.write_bytes(b"fine\nalso fine\ncaf\xe9\n")

    refused_without_trace(repo, run, path, "line 3", "not UTF-8")


def test_text_lines_can_be_appended_to_a_text_dataset(repo, run):
    (repo / "log.txt").write_text("one\ntwo\n")
    (repo / "more.txt").write_text("three\nfour\n")
    added(run, repo / "log.txt")

    added(run, repo / "more.txt", "--name", "log", "--mode", "append")

    assert (repo / "log.txt").read_text() == "one\ntwo\nthree\nfour\n"


# -- .jsonl ---------------------------------------------------------------------------------


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_json_lines_come_back_with_equal_rows_and_types(repo, run):
    path = write_jsonl(repo / "events.jsonl", ROWS)
    expected = read_jsonl(path)
    added(run, path)

    assert mreg.open("events").to_table().equals(expected)
    restore_from_cache(repo, run, "events.jsonl")

    assert read_jsonl(path).equals(expected)
    assert expected.schema.field("seen").type == pa.timestamp("s")


def test_json_lines_larger_than_a_block_are_read_in_batches(repo, run):
    rows = [{"id": i, "text": f"row {i} " + "y" * 80} for i in range(250_000)]
    path = write_jsonl(repo / "big.jsonl", rows)
    added(run, path)

    table = mreg.open("big").to_table()
    assert table.column("id").to_pylist() == list(range(len(rows)))
    restore_from_cache(repo, run, "big.jsonl")
    assert read_jsonl(path).num_rows == len(rows)


def test_json_lines_can_be_appended_and_the_file_then_holds_every_row(repo, run):
    write_jsonl(repo / "events.jsonl", ROWS[:2])
    write_jsonl(repo / "batch.jsonl", [dict(ROWS[1], id=10), dict(ROWS[0], id=11)])
    added(run, repo / "events.jsonl")

    added(run, repo / "batch.jsonl", "--name", "events", "--mode", "append")

    assert mreg.open("events").to_table().column("id").to_pylist() == [1, 2, 10, 11]
    assert read_jsonl(repo / "events.jsonl").column("id").to_pylist() == [1, 2, 10, 11]


def test_appending_json_lines_with_other_columns_is_refused(repo, run):
    write_jsonl(repo / "events.jsonl", ROWS[:2])
    write_jsonl(repo / "batch.jsonl", [{"id": 5, "other": "x"}])
    added(run, repo / "events.jsonl")
    before = snapshot(repo)

    assert_refused(
        run("add", "batch.jsonl", "--name", "events", "--mode", "append"),
        "cannot append batch.jsonl",
        "differ",
    )

    assert snapshot(repo) == before


GOOD = '{"a": 1, "b": "x"}\n'
FAR = GOOD * 1_000_000  # 19 MiB: past the 16 MiB block Arrow infers column types from


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (GOOD + "{not json}\n", ["line 2", "not JSON"]),
        (GOOD + GOOD + "[1, 2]\n", ["line 3", "an array, not an object"]),
        (GOOD + '{"a": "one", "b": "y"}\n', ["line 2", "column 'a'", "string", "number"]),
        (GOOD + '{"a": 1, "b": {"c": 1}}\n', ["line 2", "column 'b'", "object", "string"]),
        (FAR + '{"a": "late", "b": "x"}\n', ["line 1000001", "column 'a'", "int64"]),
        (FAR + '{"a": 1.5, "b": "x"}\n', ["line 1000001", "column 'a'", "int64"]),
        (FAR + '{"a": 1, "b": "x", "new": 2}\n', ["line 1000001", "field 'new'"]),
        ('{"a": 1, "n": null}\n' * 1_000_000 + '{"a": 1, "n": "x"}\n', ["column 'n'", "null"]),
        ("", ["no rows"]),
    ],
    ids=[
        "not-json",
        "not-an-object",
        "type-conflict",
        "nested-conflict",
        "conflict-far-below",
        "fraction-in-int-column-far-below",
        "new-field-far-below",
        "null-column-gets-a-value-far-below",
        "empty",
    ],
)
def test_bad_json_lines_are_refused_naming_the_line_and_column(repo, run, text, words):
    path = repo / "bad.jsonl"
    path.write_text(text)

    refused_without_trace(repo, run, path, "not valid JSON Lines", *words)


# -- .json ----------------------------------------------------------------------------------


def test_a_json_array_comes_back_with_equal_rows_and_types(repo, run):
    path = repo / "people.json"
    path.write_text(json.dumps(ROWS, indent=2))
    expected = read_json_array(path)
    added(run, path)

    assert mreg.open("people").to_table().equals(expected)
    restore_from_cache(repo, run, "people.json")

    assert read_json_array(path).equals(expected)


def test_rows_can_be_appended_to_a_json_array_from_json_lines(repo, run):
    path = repo / "people.json"
    path.write_text(json.dumps(ROWS))
    write_jsonl(repo / "more.jsonl", [dict(ROWS[0], id=7, seen="2024-06-01 08:00:00")])
    added(run, path)

    added(run, repo / "more.jsonl", "--name", "people", "--mode", "append")

    assert [row["id"] for row in json.loads(path.read_text())] == [1, 2, 3, 4, 7]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"a": 1}', ["an object at the top level", "not an array"]),
        ('[{"a": 1},\n {"a": 2,}]', ["not valid JSON", "line 2"]),
        ('[{"a": 1}, 2]', ["row 2", "an integer, not an object"]),
        ('[{"a": 1}, {"a": 2}, {"a": "three"}]', ["row 3", "column 'a'", "string"]),
        ("[]", ["no rows"]),
    ],
    ids=["top-level-object", "syntax-error", "not-an-object", "type-conflict", "empty"],
)
def test_bad_json_arrays_are_refused_naming_the_row(repo, run, text, words):
    path = repo / "bad.json"
    path.write_text(text)

    refused_without_trace(repo, run, path, *words)
