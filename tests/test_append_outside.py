"""An append only reads its batch: ``mreg add ../new.parquet --name data --mode append`` takes
rows from anywhere, and refuses in one line when it cannot tell which dataset they go to."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
from helpers import assert_refused, make_table, snapshot


def test_rows_appended_from_outside_the_repository_join_the_named_dataset(repo, run, tmp_path):
    make_table(repo / "data.parquet", rows=100)
    assert run("add", "data.parquet").exit_code == 0
    (tmp_path / "outside").mkdir()
    batch = make_table(tmp_path / "outside" / "new.parquet", rows=16, start=100)
    batch_bytes = batch.read_bytes()

    result = run("add", str(batch), "--name", "data", "--mode", "append")

    assert result.exit_code == 0, result.stderr
    ids = pq.read_table(repo / "data.parquet").column("id").to_pylist()
    assert ids == list(range(116))
    assert batch.read_bytes() == batch_bytes
    assert sorted(p.name for p in batch.parent.iterdir()) == ["new.parquet"]
    assert "in sync" in run("status").stdout


def test_the_same_outside_batch_appended_again_adds_nothing(repo, run, tmp_path):
    make_table(repo / "data.parquet", rows=100)
    run("add", "data.parquet")
    batch = make_table(tmp_path / "new.parquet", rows=16, start=100)
    run("add", str(batch), "--name", "data", "--mode", "append")

    again = run("add", str(batch), "--name", "data", "--mode", "append")

    assert again.exit_code == 0, again.stderr
    assert pq.read_table(repo / "data.parquet").num_rows == 116


def test_an_outside_batch_without_a_name_or_with_an_unknown_one_is_refused(
    repo: Path, run, tmp_path
):
    make_table(repo / "data.parquet", rows=100)
    run("add", "data.parquet")
    batch = make_table(tmp_path / "new.parquet", rows=16, start=100)
    before = snapshot(repo)

    assert_refused(run("add", str(batch), "--mode", "append"), "outside the repository", "--name")
    assert_refused(
        run("add", str(batch), "--name", "nope", "--mode", "append"), "no dataset named 'nope'"
    )
    assert snapshot(repo) == before


def test_an_overwrite_add_from_outside_is_still_refused(repo, run, tmp_path):
    batch = make_table(tmp_path / "new.parquet", rows=16)

    assert_refused(run("add", str(batch)), "outside the repository")
