"""Folders of images are datasets: one row per file, labels from class folders, and checkout
gives every file back byte for byte."""

from __future__ import annotations

import hashlib
import os
import tomllib
from pathlib import Path

import numpy as np
import pytest
from helpers import Result, assert_refused, commit_all, git, snapshot
from PIL import Image

import mreg
from mreg.converters import images
from mreg.hashing import sha256_tree

# -- helpers -------------------------------------------------------------------------------

# Pillow's save format for each suffix the tests use.
SAVE_AS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".gif": "GIF", ".bmp": "BMP"}
SAVE_AS[".webp"] = "WEBP"


def make_image(path: Path, size: tuple[int, int] = (24, 16), seed: int = 0) -> Path:
    """A small noisy RGB image in the format its suffix names (any case)."""
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, SAVE_AS[path.suffix.lower()])
    return path


def make_folder(root: Path, names: list[str], seed: int = 0) -> Path:
    for n, name in enumerate(names):
        make_image(root / name, size=(20 + n, 10 + n), seed=seed + n)
    return root


PHOTOS = ["cat/1.png", "cat/2.jpg", "cat/3.gif", "dog/1.bmp", "dog/2.webp", "top.png"]


@pytest.fixture
def photos(repo: Path) -> Path:
    """``photos/`` with two classes in every supported format and one image in the root."""
    return make_folder(repo / "photos", PHOTOS)


def files_of(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` by relative path (not following links)."""
    found = {}
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder) / name
            found[path.relative_to(root).as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def successful_add(run, *args: str) -> Result:  # type: ignore[no-untyped-def]
    """``mreg add`` with these arguments succeeds; returns its result for the output."""
    result = run("add", *args)
    assert result.exit_code == 0, result.stderr
    return result


def manifest_of(repo: Path, artifact: str) -> dict:  # type: ignore[type-arg]
    return tomllib.loads((repo / f"{artifact}.mreg.toml").read_text())


def status_line(run) -> str:  # type: ignore[no-untyped-def]
    result = run("status")
    assert result.exit_code == 0, result.stderr
    return result.stdout.strip()


# -- what a folder of images becomes -----------------------------------------------------------


def test_an_image_folder_comes_back_byte_for_byte_after_checkout(repo, run, photos):
    original = files_of(photos)
    digest = sha256_tree(photos)
    successful_add(run, "photos")
    manifest = manifest_of(repo, "photos")
    assert manifest["kind"] == "dataset"
    assert manifest["source"]["format"] == "images"
    assert manifest["source"]["restore"] == "exact"
    assert manifest["source"]["sha256"] == digest
    assert manifest["rows"] == len(PHOTOS)

    for path in sorted(photos.rglob("*"), reverse=True):
        path.unlink() if path.is_file() else path.rmdir()
    photos.rmdir()
    result = run("checkout")

    assert result.exit_code == 0, result.stderr
    assert files_of(photos) == original
    assert sha256_tree(photos) == digest
    assert status_line(run) == "photos (photos): in sync"


def test_class_sub_folders_become_labels_and_root_images_have_none(repo, run, photos):
    successful_add(run, "photos")

    table = mreg.open("photos").to_table()

    assert table.column("path").to_pylist() == sorted(PHOTOS)
    assert table.column("label").to_pylist() == ["cat", "cat", "cat", "dog", "dog", None]


def test_deeper_folders_are_labelled_by_their_first_level_and_keep_the_full_path(repo, run):
    make_folder(repo / "zoo", ["bird/small/wren.png", "bird/large/eagle/1.jpg", "fish/a.png"])
    successful_add(run, "zoo")

    table = mreg.open("zoo").to_table()

    assert table.column("path").to_pylist() == [
        "bird/large/eagle/1.jpg",
        "bird/small/wren.png",
        "fish/a.png",
    ]
    assert table.column("label").to_pylist() == ["bird", "bird", "fish"]


def test_each_row_holds_the_file_bytes_unchanged_with_size_and_format(repo, run, photos):
    successful_add(run, "photos")

    rows = mreg.open("photos").to_table().to_pylist()

    formats = {".png": "PNG", ".jpg": "JPEG", ".gif": "GIF", ".bmp": "BMP", ".webp": "WEBP"}
    for row in rows:
        path = photos / row["path"]
        assert row["image"] == path.read_bytes()
        with Image.open(path) as image:
            assert (row["width"], row["height"]) == image.size
        assert row["format"] == formats[path.suffix]
    assert {(r["path"], r["width"], r["height"]) for r in rows} >= {("cat/1.png", 20, 10)}


def test_the_columns_have_the_documented_types(repo, run, photos):
    successful_add(run, "photos")

    schema = mreg.open("photos").schema

    assert {f.name: str(f.type) for f in schema} == {
        "path": "string",
        "label": "string",
        "image": "large_binary",
        "width": "int32",
        "height": "int32",
        "format": "string",
    }


def test_image_suffixes_are_recognised_in_any_case(repo, run):
    make_folder(repo / "shouty", ["A.PNG", "b.JPG", "c.Jpeg", "d.GIF", "e.BMP", "f.WebP"])

    successful_add(run, "shouty")

    assert mreg.open("shouty").count_rows() == 6


def test_an_image_whose_suffix_lies_keeps_its_bytes_and_its_real_format(repo, run):
    make_image(repo / "mixed" / "real.png")
    (repo / "mixed" / "fake.jpg").write_bytes(make_image(repo / "tmp.png").read_bytes())
    (repo / "tmp.png").unlink()
    successful_add(run, "mixed")

    rows = mreg.open("mixed").to_table().to_pylist()

    assert [(r["path"], r["format"]) for r in rows] == [("fake.jpg", "PNG"), ("real.png", "PNG")]


def test_many_images_stream_in_batches_and_keep_their_sorted_order(repo, run, monkeypatch):
    monkeypatch.setattr(images, "BATCH_ROWS", 4)
    monkeypatch.setattr(images, "READ_AHEAD", 3)
    names = [f"c{n % 3}/{n:03d}.png" for n in range(23)]
    make_folder(repo / "many", names)
    successful_add(run, "many")

    table = mreg.open("many").to_table()

    assert table.column("path").to_pylist() == sorted(names)
    assert table.column("label").to_pylist() == [name[:2] for name in sorted(names)]


def test_re_adding_an_unchanged_image_folder_writes_nothing(repo, run, photos):
    successful_add(run, "photos")
    cache = snapshot(repo / ".mreg" / "cache")

    assert "unchanged" in successful_add(run, "photos").stdout
    assert snapshot(repo / ".mreg" / "cache") == cache


# -- folders that are not image folders --------------------------------------------------------


# Files no other folder format claims either, so the folder is kept as opaque bytes.
@pytest.mark.parametrize("other", ["notes.txt", ".DS_Store", "cat/labels.csv", "README"])
def test_a_folder_with_any_other_file_is_left_to_other_formats(repo, run, other):
    make_folder(repo / "mixed", ["cat/1.png", "dog/2.jpg"])
    (repo / "mixed" / other).write_bytes(b"{}")

    result = run("add", "mixed")

    assert result.exit_code == 0, result.stderr
    assert "tracked as opaque chunks (blob_dir): mixed/ is in no folder format" in result.stdout


def test_forcing_the_images_format_on_a_mixed_folder_names_the_other_file(repo, run):
    make_folder(repo / "mixed", ["cat/1.png"])
    (repo / "mixed" / "cat" / "readme.md").write_text("cats")
    before = snapshot(repo)

    assert_refused(
        run("add", "mixed", "--format", "images"), "mixed/cat/readme.md", "is not an image"
    )

    assert snapshot(repo) == before


def test_an_empty_folder_is_refused(repo, run):
    (repo / "empty" / "nothing").mkdir(parents=True)
    before = snapshot(repo)

    assert_refused(run("add", "empty"), "empty/", "no format mreg knows")
    assert_refused(run("add", "empty", "--format", "images"), "empty/", "holds no images")

    assert snapshot(repo) == before
    assert not (repo / "empty.mreg.toml").exists()


# -- bad images --------------------------------------------------------------------------------


def truncate(path: Path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def corrupt_png_checksum(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("name", "spoil"),
    [
        ("cat/2.jpg", lambda p: truncate(p, 0.5)),
        ("cat/3.gif", lambda p: truncate(p, 0.9)),
        ("dog/1.bmp", lambda p: truncate(p, 0.9)),
        ("dog/2.webp", lambda p: truncate(p, 0.5)),
        ("cat/1.png", corrupt_png_checksum),
        ("top.png", lambda p: p.write_bytes(b"not an image at all")),
    ],
    ids=["truncated-jpeg", "truncated-gif", "truncated-bmp", "truncated-webp", "png-crc", "junk"],
)
def test_a_corrupt_image_is_refused_naming_it_and_nothing_is_written(
    repo, run, photos, name, spoil
):
    spoil(photos / name)
    before = snapshot(repo)

    assert_refused(run("add", "photos"), f"photos/{name}", "corrupt or truncated", "--skip-bad")

    assert snapshot(repo) == before
    assert not (repo / "photos.mreg.toml").exists()


def test_a_file_of_another_image_format_with_an_image_suffix_is_refused(repo, run, photos):
    Image.new("RGB", (4, 4)).save(photos / "cat" / "scan.png", "TIFF")
    before = snapshot(repo)

    assert_refused(run("add", "photos"), "photos/cat/scan.png", "corrupt or truncated")

    assert snapshot(repo) == before


def test_skip_bad_leaves_corrupt_images_out_and_counts_them(repo, run, photos):
    truncate(photos / "cat" / "2.jpg", 0.5)
    (photos / "dog" / "1.bmp").write_bytes(b"junk")

    result = successful_add(run, "photos", "--skip-bad")

    assert "skipped 2 unreadable record(s): cat/2.jpg, dog/1.bmp" in result.stderr
    table = mreg.open("photos").to_table()
    assert table.column("path").to_pylist() == ["cat/1.png", "cat/3.gif", "dog/2.webp", "top.png"]


def test_skip_bad_through_the_python_api_names_the_skipped_images(repo, photos):
    truncate(photos / "cat" / "2.jpg", 0.5)

    result = mreg.Repo(".").add("photos", skip_bad=True)

    assert result.skipped == ("cat/2.jpg",)
    assert result.manifest.rows == len(PHOTOS) - 1


def test_a_folder_where_every_image_is_bad_is_refused_even_with_skip_bad(repo, run):
    (repo / "broken").mkdir()
    (repo / "broken" / "a.png").write_bytes(b"junk")
    before = snapshot(repo)

    assert_refused(run("add", "broken", "--skip-bad"), "broken/", "none of its 1 image(s)")

    assert snapshot(repo) == before


def test_checkout_after_skip_bad_gives_the_folder_without_the_skipped_images(repo, run, photos):
    truncate(photos / "cat" / "2.jpg", 0.5)
    successful_add(run, "photos", "--skip-bad")
    kept = {k: v for k, v in files_of(photos).items() if k != "cat/2.jpg"}
    assert "changed in workspace" in status_line(run)

    result = run("checkout", "--force")

    assert result.exit_code == 0, result.stderr
    assert files_of(photos) == kept
    assert status_line(run) == "photos (photos): in sync"


# -- links -------------------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["cat/linked.png", "linked_dir"])
def test_a_symbolic_link_in_the_folder_is_refused_and_never_followed(
    repo, run, photos, tmp_path, link
):
    outside = make_folder(tmp_path / "outside", ["secret.png"])
    target = outside / "secret.png" if link.endswith(".png") else outside
    (photos / link).symlink_to(target)
    before = snapshot(repo)

    assert_refused(run("add", "photos"), f"photos/{link}", "symbolic link")

    assert snapshot(repo) == before
    assert not (repo / "photos.mreg.toml").exists()


# -- versions and remotes ----------------------------------------------------------------------


def test_append_adds_new_images_and_checkout_holds_old_and_new(repo, run, photos):
    successful_add(run, "photos")
    old = files_of(photos)
    make_folder(repo / "more_images", ["cat/4.png", "bird/1.jpg"], seed=50)
    new = files_of(repo / "more_images")

    successful_add(run, "more_images", "--name", "photos", "--mode", "append")

    assert files_of(photos) == {**old, **new}
    assert mreg.open("photos").count_rows() == len(PHOTOS) + 2
    assert manifest_of(repo, "photos")["source"]["sha256"] == sha256_tree(photos)
    assert status_line(run) == "photos (photos): in sync"
    labels = mreg.open("photos").to_table().column("label").to_pylist()
    assert labels[-2:] == ["bird", "cat"]


def test_an_appended_image_with_an_existing_path_replaces_the_older_one_on_checkout(
    repo, run, photos
):
    successful_add(run, "photos")
    newer = make_folder(repo / "fix", ["cat/1.png"], seed=99) / "cat" / "1.png"

    successful_add(run, "fix", "--name", "photos", "--mode", "append")

    assert (photos / "cat" / "1.png").read_bytes() == newer.read_bytes()
    assert status_line(run) == "photos (photos): in sync"


def test_push_clone_and_pull_give_identical_files(
    repo, run, photos, remote_dir, tmp_path, monkeypatch
):
    original = files_of(photos)
    successful_add(run, "photos")
    commit_all(repo, "add photos")
    assert run("push").exit_code == 0

    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(repo), str(clone))
    monkeypatch.chdir(clone)
    assert not (clone / "photos").exists()
    result = run("pull")

    assert result.exit_code == 0, result.stderr
    assert files_of(clone / "photos") == original
    assert status_line(run) == "photos (photos): in sync"
    assert run("verify").exit_code == 0
