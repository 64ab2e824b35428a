"""A pull lands each download in the cache and, where the format places the bytes up front,
straight in the restored file: the same bytes, checked, with no second copy out of the cache."""

from __future__ import annotations

import hashlib
import io
import json
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import assert_refused, commit_all, git
from safetensors.numpy import save_file

import mreg
from mreg.converters.base import ReadOptions
from mreg.converters.safetensors import CONVERTER as SAFETENSORS
from mreg.converters.transformers_folder import CONVERTER as TRANSFORMERS
from mreg.repo.restoration import Restoration
from mreg.storage.landing import (
    ALIGN,
    Copy,
    Landing,
    Turns,
    TurnsCancelled,
    chunk_buffer,
    stream_into,
)

BIG = (512, 512)  # 1 MiB of float32: Lance keeps each such tensor in a blob file of its own


class Trickle(io.RawIOBase):
    """A source that hands back at most ``step`` bytes per read, as a socket does."""

    def __init__(self, data: bytes, step: int) -> None:
        self.data, self.position, self.step = data, 0, step

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        piece = self.data[self.position : self.position + min(self.step, len(buffer))]
        buffer[: len(piece)] = piece
        self.position += len(piece)
        return len(piece)


def land(path: Path | None, data: bytes, copies: list[Copy]) -> tuple[Landing, str]:
    with Landing(path, len(data), copies) as landing:
        digest = stream_into(landing, Trickle(data, 1000).readinto, lambda n: None)
    return landing, digest


# -- the landing ------------------------------------------------------------------------------


def test_a_landing_whose_bytes_are_all_copied_writes_its_file_directly_and_exactly(tmp_path):
    data = os.urandom(3 * ALIGN + 123)  # a last block that O_DIRECT must pad, then cut
    out = tmp_path / "restored"
    with open(out, "wb") as handle:
        handle.write(b"HEADER")
        fd = os.open(out, os.O_WRONLY)
        try:
            landing, digest = land(tmp_path / "cached", data, [Copy(fd, offset=6)])
        finally:
            os.close(fd)

    assert landing.direct
    assert (tmp_path / "cached").read_bytes() == data
    assert out.read_bytes() == b"HEADER" + data
    assert digest == hashlib.sha256(data).hexdigest()


def test_a_landing_that_is_only_partly_copied_is_written_through_the_page_cache(tmp_path):
    data = os.urandom(5 * ALIGN)
    out = tmp_path / "restored"
    out.write_bytes(b"")
    fd = os.open(out, os.O_WRONLY)
    try:
        landing, _ = land(tmp_path / "cached", data, [Copy(fd, 0, start=ALIGN, length=100)])
    finally:
        os.close(fd)

    assert not landing.direct  # the rest of the file is still to be read from the cache
    assert (tmp_path / "cached").read_bytes() == data
    assert out.read_bytes() == data[ALIGN : ALIGN + 100]


def test_a_write_that_direct_io_refuses_goes_on_as_an_ordinary_write(tmp_path):
    """Some file systems take O_DIRECT at open and refuse the writes (EINVAL); a buffer that
    is not block-aligned in memory is refused the same way everywhere. Parts land in any order:
    here the last one first (padded to a block by the direct write), then one that is refused."""
    data = os.urandom(2 * ALIGN + 100)
    tail = chunk_buffer()
    tail[:100] = data[2 * ALIGN :]
    misaligned = memoryview(bytearray(2 * ALIGN + 1))[1:]
    misaligned[:] = data[: 2 * ALIGN]
    out = tmp_path / "restored"
    out.write_bytes(b"")
    fd = os.open(out, os.O_WRONLY)
    try:
        with Landing(tmp_path / "cached", len(data), [Copy(fd, 0)]) as landing:
            assert landing.direct
            landing.write(2 * ALIGN, tail, 100)
            landing.write(0, misaligned, 2 * ALIGN)
            assert not landing.direct
    finally:
        os.close(fd)
    assert (tmp_path / "cached").read_bytes() == data  # the padding cut off all the same
    assert out.read_bytes() == data


def test_a_landing_without_a_file_only_hashes(tmp_path):
    data = os.urandom(10_000)
    _, digest = land(None, data, [])
    assert digest == hashlib.sha256(data).hexdigest()
    assert list(tmp_path.iterdir()) == []


def test_turns_let_threads_step_in_index_order_whatever_order_they_arrive_in():
    turns, steps = Turns(), []

    def step(index: int) -> None:
        time.sleep(0.01 * (5 - index))  # the last arrives first
        with turns.of(index):
            steps.append(index)

    threads = [threading.Thread(target=step, args=(i,)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert steps == [0, 1, 2, 3, 4]


def test_cancelled_turns_wake_every_waiter_with_an_error():
    turns, errors = Turns(), []

    def wait_for_turn_three() -> None:
        try:
            with turns.of(3):
                pass
        except TurnsCancelled as error:
            errors.append(error)

    waiter = threading.Thread(target=wait_for_turn_three)
    waiter.start()
    turns.cancel()
    waiter.join(timeout=5)
    assert not waiter.is_alive() and len(errors) == 1


# -- where formats place tensors ----------------------------------------------------------------


def assert_placed_where_the_bytes_are(converter, path: Path) -> int:  # type: ignore[no-untyped-def]
    """Every placement the converter gives for ``path`` points at the tensor's own bytes in the
    original; returns how many tensors were placed."""
    source = converter.read(path, ReadOptions())
    places = converter.placements([t.name for t in source.tensors], source.restore_info)
    assert len(places) == len(source.tensors)
    for tensor, place in zip(source.tensors, places, strict=True):
        if place is not None:
            file = path / place.file if place.file else path
            with open(file, "rb") as handle:
                handle.seek(place.offset)
                assert handle.read(len(tensor.data)) == bytes(tensor.data), tensor.name
    return sum(place is not None for place in places)


def make_model(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    tensors = {
        "head.weight": rng.standard_normal(BIG, dtype=np.float32),
        "head.bias": rng.standard_normal(16, dtype=np.float32),
        "body.weight": rng.standard_normal(BIG, dtype=np.float32),
    }
    save_file(tensors, str(path), metadata={"format": "pt"})
    return path


def make_sharded_folder(folder: Path) -> Path:
    """A Transformers-style folder: config, two safetensors shards and their index."""
    folder.mkdir()
    rng = np.random.default_rng(1)
    shards = {
        "model-00001-of-00002.safetensors": {"a.weight": rng.standard_normal(BIG)},
        "model-00002-of-00002.safetensors": {
            "b.weight": rng.standard_normal(BIG),
            "b.bias": rng.standard_normal(8),
        },
    }
    weight_map = {}
    for file, tensors in shards.items():
        save_file({k: v.astype(np.float32) for k, v in tensors.items()}, str(folder / file))
        weight_map.update(dict.fromkeys(tensors, file))
    index = {"metadata": {"total_size": 0}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "config.json").write_text(json.dumps({"architectures": ["Tiny"], "hidden": 4}))
    return folder


def test_safetensors_places_each_tensor_where_the_original_file_holds_it(tmp_path):
    assert assert_placed_where_the_bytes_are(SAFETENSORS, make_model(tmp_path / "m.st")) == 3


def test_a_safetensors_file_rebuilt_from_tensors_alone_places_nothing():
    info = json.dumps({"metadata": {}})  # not an exact restore: the header is built anew
    assert SAFETENSORS.placements(["a", "b"], info) == [None, None]


def test_a_sharded_folder_places_each_tensor_in_its_shard(tmp_path):
    folder = make_sharded_folder(tmp_path / "model")
    assert assert_placed_where_the_bytes_are(TRANSFORMERS, folder) == 3


def test_a_shard_path_that_leaves_the_folder_is_refused():
    shard = {"file": "../x", "format": "safetensors", "tensors": 0, "info": "{}"}
    info = json.dumps({"shards": [shard]})
    with pytest.raises(mreg.MregError, match="outside the model folder"):
        TRANSFORMERS.placements([], info)


# -- pull -------------------------------------------------------------------------------------


def pushed_clone(repo: Path, run, tmp_path: Path, artifact: str) -> Path:  # type: ignore[no-untyped-def]
    assert run("add", artifact).exit_code == 0
    assert run("push").exit_code == 0
    commit_all(repo, "model")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    return clone


def tree_bytes(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_pull_plans_to_land_every_whole_tensor_file_in_the_restored_file(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    make_model(repo / "m.safetensors")
    clone = pushed_clone(repo, run, tmp_path, "m.safetensors")
    opened = mreg.Repo(clone)
    (target,) = opened.ls()
    places = SAFETENSORS.placements(
        [t.name for t in target.manifest.tensors], target.manifest.source.restore_info
    )
    big = {t.digest: p.offset for t, p in zip(target.manifest.tensors, places, strict=True)}

    with Restoration(opened, target.manifest_rel, target.manifest) as restoration:
        copies = restoration.copies()

    by_digest = {f.path: f.sha256 for f in target.manifest.files}
    landed = {by_digest[path]: [c.offset for c in found] for path, found in copies.items()}
    # The two 1 MiB tensors, each at its offset in the original file; the bias goes via Lance.
    assert len(landed) == 2
    assert all(offsets == [big[digest]] for digest, offsets in landed.items())
    assert not [p for p in clone.iterdir() if p.name.endswith(".tmp")]  # closed: cleaned up


def test_pull_gives_back_the_original_file_when_part_of_it_is_cached_already(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    """Tensors whose files were fetched before come from the cache, the rest land."""
    original = make_model(repo / "m.safetensors").read_bytes()
    clone = pushed_clone(repo, run, tmp_path, "m.safetensors")
    monkeypatch.chdir(clone)
    assert run("fetch").exit_code == 0
    cache = mreg.Repo(clone).cache
    (target,) = mreg.Repo(clone).ls()
    biggest = max(target.manifest.files, key=lambda f: f.size)
    cache.path(biggest.path).unlink()

    assert run("pull").exit_code == 0

    assert (clone / "m.safetensors").read_bytes() == original
    assert run("verify").exit_code == 0
    assert "in sync" in run("status").stdout


def test_pull_lands_one_download_in_every_tensor_it_holds(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    """Two tensors with the same bytes (tied or identically initialised weights) are held by
    files with the same digest: one download may fill both places."""
    same = np.random.default_rng(3).standard_normal(BIG, dtype=np.float32)
    save_file({"a.weight": same, "b.weight": same.copy()}, str(repo / "m.safetensors"))
    original = (repo / "m.safetensors").read_bytes()
    clone = pushed_clone(repo, run, tmp_path, "m.safetensors")
    monkeypatch.chdir(clone)

    assert run("pull").exit_code == 0

    assert (clone / "m.safetensors").read_bytes() == original
    assert run("verify").exit_code == 0


def test_pull_lands_the_shards_of_a_model_folder(repo, run, remote_dir, tmp_path, monkeypatch):
    original = tree_bytes(make_sharded_folder(repo / "model"))
    clone = pushed_clone(repo, run, tmp_path, "model")
    monkeypatch.chdir(clone)

    assert run("pull").exit_code == 0

    assert tree_bytes(clone / "model") == original
    assert "in sync" in run("status").stdout


def test_a_pull_whose_download_is_corrupt_leaves_the_work_tree_as_it_was_and_a_rerun_converges(
    repo, run, remote_dir, tmp_path, monkeypatch
):
    original = make_model(repo / "m.safetensors").read_bytes()
    clone = pushed_clone(repo, run, tmp_path, "m.safetensors")
    (target,) = mreg.Repo(clone).ls()
    biggest = max(target.manifest.files, key=lambda f: f.size)
    remote_file = remote_dir / biggest.path
    good = remote_file.read_bytes()
    remote_file.write_bytes(good[:100] + bytes([good[100] ^ 1]) + good[101:])
    monkeypatch.chdir(clone)

    assert_refused(run("pull"), "sha256")
    assert not (clone / "m.safetensors").exists()
    assert not [p for p in clone.iterdir() if p.name.endswith(".tmp")]
    assert not mreg.Repo(clone).cache.has(biggest)

    remote_file.write_bytes(good)
    assert run("pull").exit_code == 0
    assert (clone / "m.safetensors").read_bytes() == original
