"""PyTorch (and TensorFlow) read exact dataset versions: from the cache or straight from a remote,
in DataLoader workers, as tensors equal to the source images; registry weights load into
modules; bad input gets one clear line."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from helpers import added, commit_all, git, make_safetensors, make_tensors
from PIL import Image
from seaweed import ACCESS_KEY, SECRET_KEY, start_seaweed
from torch.utils.data import DataLoader

import mreg
from mreg.errors import CorruptInput, MissingData, RemoteError, UsageError
from mreg.torch import LanceIterableDataset, LanceTorchDataset, load_into, loader

CLASSES = ["bird", "cat", "dog"]
PER_CLASS = 20


# -- the world ---------------------------------------------------------------------------------


def make_images(root: Path, names: list[str], seed: int = 0) -> dict[str, np.ndarray]:
    """PNG files of 8x6 random pixels; their pixels by relative path."""
    pixels = {}
    rng = np.random.default_rng(seed)
    for name in names:
        array = rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(array).save(path, "PNG")
        pixels[name] = array
    return pixels


@pytest.fixture
def flowers(repo: Path, run) -> dict[str, np.ndarray]:  # type: ignore[no-untyped-def]
    """``flowers/``: 60 PNGs in 3 class folders, added and committed; pixels by path."""
    names = [f"{c}/{i:02d}.png" for c in CLASSES for i in range(PER_CLASS)]
    pixels = make_images(repo / "flowers", names)
    added(run, repo / "flowers")
    commit_all(repo, "add flowers")
    return pixels


def paths_in_order(name: str = "flowers", **kw: str) -> list[str]:
    return mreg.open(name, **kw).to_table(columns=["path"]).column("path").to_pylist()


def as_chw(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(array).permute(2, 0, 1)


def one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(error.value)
    assert "\n" not in message and "Traceback" not in message, message
    return message


# -- map-style ---------------------------------------------------------------------------------


def test_map_style_samples_are_the_source_pixels_and_class_indices(flowers):
    ds = LanceTorchDataset("flowers")

    assert len(ds) == 60
    assert ds.classes == CLASSES
    assert ds.class_to_idx == {"bird": 0, "cat": 1, "dog": 2}
    for index, path in enumerate(paths_in_order()):
        image, label = ds[index]
        assert image.dtype == torch.uint8
        assert torch.equal(image, as_chw(flowers[path]))
        assert label == ds.class_to_idx[path.split("/")[0]]
    batch = ds.__getitems__([59, 0, 59])
    assert [label for _, label in batch] == [2, 0, 2]
    assert torch.equal(ds[-1][0], batch[0][0])
    with pytest.raises(IndexError, match="index 60 is out of range"):
        ds[60]
    in_memory = LanceTorchDataset("flowers", in_memory=True).__getitems__([59, 0, 59])
    for (image, label), (expected, expected_label) in zip(in_memory, batch, strict=True):
        assert torch.equal(image, expected) and label == expected_label


def test_a_shuffled_dataloader_with_two_workers_yields_every_image_exactly_once(flowers):
    ds = LanceTorchDataset("flowers", columns=["image", "label", "path"])

    seen = Counter()
    for batch in loader(ds, batch_size=7, shuffle=True, num_workers=2):
        for image, label, path in zip(batch["image"], batch["label"], batch["path"], strict=True):
            assert torch.equal(image, as_chw(flowers[path]))
            assert CLASSES[int(label)] == path.split("/")[0]
            seen[path] += 1

    assert seen == Counter(dict.fromkeys(flowers, 1))


def test_a_process_forked_after_lance_ran_is_refused_instead_of_hanging(flowers):
    ds = LanceTorchDataset("flowers")  # reads labels: Lance runs in this process
    read, write = os.pipe()

    with pytest.warns(UserWarning, match="lance is not fork-safe"):
        child = os.fork()
    if child == 0:  # what a forked DataLoader worker does first
        try:
            ds[0]
            message = "read"
        except UsageError as error:
            message = str(error)
        os.write(write, message.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(child, 0)
    message = os.read(read, 1000).decode()

    assert message.startswith(f"this process (pid {child}) was forked from one that had read")
    assert "\n" not in message


def test_transform_gets_the_pil_image_and_target_transform_the_label_index(flowers):
    ds = LanceTorchDataset(
        "flowers",
        transform=lambda image: (image.mode, image.size),
        target_transform=lambda label: CLASSES[label],
    )

    assert ds[0] == (("RGB", (8, 6)), "bird")


def test_a_filter_keeps_the_matching_rows_only(flowers):
    cats = LanceTorchDataset("flowers", filter="label = 'cat'")

    assert len(cats) == PER_CLASS
    assert {label for _, label in cats.__getitems__(range(PER_CLASS))} == {1}
    assert cats.classes == CLASSES  # indices stay those of the whole version


def test_a_dataset_without_images_gives_dicts_of_its_columns(repo, run):
    table = pa.table({"x": [1, 2, 3], "name": ["a", "b", "c"], "v": [[0.5, 1.0]] * 3})
    pq.write_table(table, repo / "table.parquet")
    added(run, repo / "table.parquet")

    ds = LanceTorchDataset("table")

    assert ds[2]["x"] == 3 and ds[2]["name"] == "c"
    assert torch.equal(ds[2]["v"], torch.tensor([0.5, 1.0], dtype=torch.float64))


# -- versions ----------------------------------------------------------------------------------


def test_a_pinned_older_rev_gives_the_older_rows(repo, run, flowers):
    assert run("tag", "flowers", "v1.0.0").exit_code == 0
    newer = make_images(repo / "more", ["fish/00.png", "bird/99.png"], seed=7)
    added(run, repo / "more", "--name", "flowers", "--mode", "append")
    commit_all(repo, "more flowers")

    old = LanceTorchDataset("flowers", rev="v1.0.0")
    new = LanceTorchDataset("flowers")

    assert (len(old), len(new)) == (60, 62)
    assert old.classes == CLASSES and new.classes == [*CLASSES, "fish"]
    last = paths_in_order()[-1]
    assert torch.equal(new[61][0], as_chw(newer[last]))
    assert torch.equal(old[59][0], as_chw(flowers["dog/19.png"]))


# -- iterable ----------------------------------------------------------------------------------


def test_the_iterable_reads_every_row_once_per_epoch_in_an_order_set_by_seed_and_epoch(flowers):
    def order(**kw: object) -> list[str]:
        ds = LanceIterableDataset("flowers", columns=["path"], batch_size=16, **kw)
        return [sample["path"] for sample in ds]

    in_order = order()
    first = LanceIterableDataset(
        "flowers", columns=["path"], batch_size=16, shuffle=True, buffer_size=10
    )
    epoch_0, epoch_1 = [s["path"] for s in first], [s["path"] for s in first]

    assert in_order == paths_in_order()
    assert sorted(epoch_0) == sorted(epoch_1) == sorted(in_order)
    assert len({tuple(in_order), tuple(epoch_0), tuple(epoch_1)}) == 3
    assert order(shuffle=True, buffer_size=10) == epoch_0
    assert order(shuffle=True, buffer_size=10, seed=1) != epoch_0


# -- reading from a remote ---------------------------------------------------------------------


def test_a_fresh_clone_reads_straight_from_s3_without_downloading_data_files(
    repo, run, flowers, s3_remote, tmp_path
):
    commit_all(repo, "add the remote")
    assert run("push").exit_code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))

    remote = LanceTorchDataset("flowers", repo=clone, remote="s3")
    iterable = LanceIterableDataset(
        "flowers", repo=clone, remote="s3", columns=["path", "image"], batch_size=8, shuffle=True
    )
    seen = Counter()
    for batch in loader(iterable, batch_size=5, num_workers=2):
        for image, path in zip(batch["image"], batch["path"], strict=True):
            assert torch.equal(image, as_chw(flowers[path]))
            seen[path] += 1

    assert seen == Counter(dict.fromkeys(flowers, 1))
    local = LanceTorchDataset("flowers")
    for index in (0, 31, 59):
        assert torch.equal(remote[index][0], local[index][0])
        assert remote[index][1] == local[index][1]
    assert not list((clone / ".mreg" / "cache").glob("data/*"))


def test_a_dataset_not_pushed_to_the_remote_is_refused_by_name(flowers, s3_remote):
    with pytest.raises(MissingData, match=r"remote 's3' .* lacks 1 data file\(s\) of 'flowers'"):
        LanceTorchDataset("flowers", remote="s3")


@pytest.mark.slow
def test_an_s3_endpoint_that_stops_mid_epoch_raises_an_error_naming_the_remote(
    repo, run, flowers, tmp_path, monkeypatch
):
    server = start_seaweed(tmp_path / "seaweed")
    try:
        server.create_bucket("flaky")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        added_remote = run(
            "remote", "add", "flaky", "s3://flaky/ml", "--endpoint-url", server.endpoint,
            "--region", "us-east-1",
        )  # fmt: skip
        assert added_remote.exit_code == 0, added_remote.stderr
        assert run("push", "-r", "flaky").exit_code == 0
        loader = iter(DataLoader(LanceTorchDataset("flowers", remote="flaky"), batch_size=10))
        next(loader)
        server.process.kill()  # the endpoint goes away at once, as a crashed server would
        server.process.wait()
        start = time.monotonic()
        with pytest.raises(RemoteError, match=r"^remote 'flaky' \(s3://flaky/ml at http") as error:
            list(loader)
        assert time.monotonic() - start < 30
        assert "reading 'flowers'" in one_line(error)
    finally:
        server.stop()


# -- model weights -----------------------------------------------------------------------------


class Net(torch.nn.Module):
    def __init__(self, width: int = 16, layers: int = 3) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList(torch.nn.Linear(width, width) for _ in range(layers))


def test_load_into_fills_a_module_with_the_registered_weights(repo, run):
    added(run, make_safetensors(repo / "net.safetensors", seed=3))
    net = Net()

    result = load_into(net, "net")

    assert (result.missing_keys, result.unexpected_keys) == ([], [])
    for key, array in make_tensors(seed=3).items():
        assert torch.equal(net.state_dict()[key], torch.from_numpy(array))


def test_load_into_names_the_tensors_whose_shapes_differ(repo, run):
    added(run, make_safetensors(repo / "net.safetensors"))
    net = Net(width=8)
    before = {k: v.clone() for k, v in net.state_dict().items()}

    with pytest.raises(UsageError, match=r"layers.0.bias is 16 in 'net', 8 in the module") as error:
        load_into(net, "net")

    assert "(and 3 more)" in one_line(error)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


def test_load_into_names_missing_keys_unless_strict_is_off(repo, run):
    added(run, make_safetensors(repo / "net.safetensors"))

    with pytest.raises(UsageError, match=r"do not match Net: missing layers.3.bias, layers.3"):
        load_into(Net(layers=4), "net")
    result = load_into(Net(layers=4), "net", strict=False)

    assert result.missing_keys == ["layers.3.weight", "layers.3.bias"]


# -- bad input ---------------------------------------------------------------------------------


def test_a_label_column_the_dataset_lacks_is_refused_by_name(flowers):
    with pytest.raises(UsageError, match=r"^'flowers' has no column 'species' \(it has: path,"):
        LanceTorchDataset("flowers", label_column="species")


def test_a_column_that_holds_no_images_is_refused_naming_column_and_row(repo, run, flowers):
    table = pa.table({"image": [b"\x89PNG\r\n\x1a\n", b"not an image"], "label": ["a", "b"]})
    pq.write_table(table, repo / "junk.parquet")
    added(run, repo / "junk.parquet")

    with pytest.raises(CorruptInput, match=r"^row 1 of 'junk': column 'image' is not an image"):
        LanceTorchDataset("junk")[1]
    with pytest.raises(UsageError, match=r"column 'path' of 'flowers' holds string, not encoded"):
        LanceTorchDataset("flowers", image_column="path")


def test_images_without_a_class_folder_are_refused_unless_read_without_labels(repo, run):
    make_images(repo / "mixed", ["cat/00.png", "top.png"])
    added(run, repo / "mixed")

    with pytest.raises(UsageError, match=r"^1 row\(s\) of 'mixed' have no 'label' \(first: row 1"):
        LanceTorchDataset("mixed")
    assert LanceTorchDataset("mixed", columns=["image"])[1].shape == (3, 6, 8)


def test_an_empty_dataset_or_selection_is_refused_when_the_dataset_is_made(repo, run, flowers):
    empty = pa.table({"x": pa.array([], pa.int64())})
    pq.write_table(empty, repo / "empty.parquet")
    added(run, repo / "empty.parquet")

    with pytest.raises(UsageError, match=r"^'empty' has no rows: there is nothing to load"):
        LanceTorchDataset("empty")
    with pytest.raises(UsageError, match=r"^'flowers' has no rows matching \"label = 'zebra'\""):
        LanceIterableDataset("flowers", filter="label = 'zebra'")


def test_a_model_is_refused_where_a_dataset_is_expected(repo, run):
    added(run, make_safetensors(repo / "net.safetensors"))

    with pytest.raises(UsageError, match=r"^'net' is a model, not a dataset") as error:
        LanceTorchDataset("net")
    assert error.value.hint is not None and "load_into" in error.value.hint


def test_a_dataset_is_refused_where_model_weights_are_expected(flowers):
    with pytest.raises(UsageError, match=r"^'flowers' is a dataset, not a model") as error:
        load_into(Net(), "flowers")
    assert error.value.hint is not None and "LanceTorchDataset" in error.value.hint


# -- TensorFlow and imports --------------------------------------------------------------------


def test_tf_dataset_gives_images_and_labels(flowers):
    tf = pytest.importorskip("tensorflow")
    import mreg.tf

    image, label = next(iter(mreg.tf.dataset("flowers")))

    assert image.dtype == tf.uint8 and image.shape == (6, 8, 3)
    assert int(label) == 0


def test_without_tensorflow_mreg_tf_names_the_pip_command():
    if _has_module("tensorflow"):
        pytest.skip("TensorFlow is installed")
    import mreg.tf

    with pytest.raises(ImportError, match="pip install tensorflow"):
        mreg.tf.dataset("anything")


def test_mreg_tf_and_the_torch_sources_import_without_torch():
    code = "import sys, mreg.tf, mreg.torch.rows; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def _has_module(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


# -- more sources ------------------------------------------------------------------------------


def test_a_directory_remote_is_read_in_place_too(repo, run, flowers, remote_dir, tmp_path):
    commit_all(repo, "add the remote")
    assert run("push").exit_code == 0
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))

    ds = LanceTorchDataset("flowers", repo=clone, remote="origin")

    assert torch.equal(ds[42][0], LanceTorchDataset("flowers")[42][0])
    assert not list((clone / ".mreg" / "cache").glob("data/*"))


def test_a_hugging_face_split_keeps_its_class_label_names(repo, run):
    from datasets import ClassLabel, DatasetDict, Features
    from datasets import Dataset as HfDataset
    from datasets import Image as HfImage

    features = Features({"image": HfImage(), "label": ClassLabel(names=["no", "yes"])})
    pixels = make_images(repo / "raw", ["a.png", "b.png", "c.png"])

    def split(names: list[str], labels: list[int]) -> HfDataset:
        images = [{"bytes": (repo / "raw" / n).read_bytes(), "path": None} for n in names]
        return HfDataset.from_dict({"image": images, "label": labels}, features=features)

    parts = {"train": split(["a.png", "b.png"], [1, 0]), "test": split(["c.png"], [1])}
    DatasetDict(parts).save_to_disk(str(repo / "hf"))
    added(run, repo / "hf")

    test = LanceTorchDataset("hf", filter="split = 'test'")

    assert (len(test), test.classes, test.class_to_idx) == (1, ["no", "yes"], {"no": 0, "yes": 1})
    assert torch.equal(test[0][0], as_chw(pixels["c.png"])) and test[0][1] == 1
