"""A cloned repository and the files a user adds are untrusted input.

A user who clones a repository and runs mreg in it must be as safe as with ``git clone`` alone:
nothing written outside the work tree, nothing that git brought trusted as this machine's own
knowledge, no escape sequence reaching the terminal. A hostile file given to ``mreg add`` is
refused in one line, with nothing written to the cache.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import (
    added,
    assert_refused,
    commit_all,
    git,
    make_safetensors,
    snapshot,
)

import mreg
from mreg.errors import UnsafeRepository
from mreg.hashing import sha256_path
from mreg.repo import Repo

# -- a hostile clone ---------------------------------------------------------------------------


@pytest.fixture
def home_stand_in(tmp_path: Path) -> Path:
    """A folder outside every repository standing in for ``~/.ssh``."""
    folder = tmp_path / "ssh"
    folder.mkdir()
    (folder / "authorized_keys").write_text("ssh-ed25519 AAAA... user@host\n")
    return folder


@pytest.fixture
def upstream(repo: Path, remote_dir: Path, run) -> Path:  # type: ignore[no-untyped-def]
    """A repository with a model pushed to a local remote and committed (config included)."""
    make_safetensors(repo / "model.safetensors")
    added(run, repo / "model.safetensors")
    assert run("push").exit_code == 0
    commit_all(repo, "model")
    return repo


def clone_of(upstream: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh clone of ``upstream`` (what a victim gets), as the current directory."""
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(upstream), str(clone))
    monkeypatch.chdir(clone)
    return clone


def commit_link(root: Path, relpath: str, points_to: str | Path, message: str = "link") -> None:
    """Commit a symbolic link at ``relpath`` (git forced past .gitignore)."""
    link = root / relpath
    if link.is_dir() and not link.is_symlink():
        shutil.rmtree(link)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.unlink(missing_ok=True)
    os.symlink(points_to, link)
    git(root, "add", "-f", relpath)
    git(root, "commit", "-q", "-m", message)


def outside_untouched(folder: Path, before: dict[str, str]) -> None:
    assert snapshot(folder) == before
    assert sorted(p.name for p in folder.iterdir()) == sorted(before)


Plant = Callable[[Path, Path], str]  # (upstream, stand-in) -> the path the refusal names


def plant_cache_link(upstream: Path, stand_in: Path) -> str:
    commit_link(upstream, ".mreg/cache/data", stand_in)
    return ".mreg/cache/data"


def plant_cache_folder_link(upstream: Path, stand_in: Path) -> str:
    commit_link(upstream, ".mreg/cache", stand_in)
    return ".mreg/cache"


def plant_tmp_link(upstream: Path, stand_in: Path) -> str:
    commit_link(upstream, ".mreg/tmp", stand_in)
    return ".mreg/tmp"


def plant_state(upstream: Path, stand_in: Path) -> str:
    state = upstream / ".mreg" / "state.json"
    git(upstream, "add", "-f", ".mreg/state.json")  # whatever mreg remembered there
    assert state.exists()
    git(upstream, "commit", "-q", "-m", "state")
    return ".mreg/state.json"


def plant_local_config(upstream: Path, stand_in: Path) -> str:
    (upstream / ".mreg" / "config.local.toml").write_text("# planted\n")
    git(upstream, "add", "-f", ".mreg/config.local.toml")
    git(upstream, "commit", "-q", "-m", "local config")
    return ".mreg/config.local.toml"


def plant_lock(upstream: Path, stand_in: Path) -> str:
    commit_link(upstream, ".mreg/lock", stand_in / "authorized_keys")
    return ".mreg/lock"


def plant_config_link(upstream: Path, stand_in: Path) -> str:
    (stand_in / "config.toml").write_bytes((upstream / ".mreg" / "config.toml").read_bytes())
    commit_link(upstream, ".mreg/config.toml", stand_in / "config.toml")
    return ".mreg/config.toml"


PLANTS = [
    plant_cache_link,
    plant_cache_folder_link,
    plant_tmp_link,
    plant_state,
    plant_local_config,
    plant_lock,
    plant_config_link,
]


@pytest.mark.parametrize("plant", PLANTS, ids=lambda p: p.__name__.removeprefix("plant_"))
@pytest.mark.parametrize(
    "command", [["pull"], ["status"], ["checkout", "--force"], ["validate"]], ids=" ".join
)
def test_a_clone_that_commits_local_mreg_content_is_refused_and_nothing_is_written_outside(
    upstream, home_stand_in, tmp_path, monkeypatch, run, plant, command
):
    named = plant(upstream, home_stand_in)
    clone = clone_of(upstream, tmp_path, monkeypatch)
    before = snapshot(home_stand_in)

    line = assert_refused(run(*command), named, "git rm -r --cached")

    outside_untouched(home_stand_in, before)
    assert not (clone / "model.safetensors").exists()
    assert "commits" in line


def test_a_clone_whose_mreg_folder_is_a_committed_link_is_refused_by_init(
    upstream, home_stand_in, tmp_path, monkeypatch, run
):
    git(upstream, "rm", "-r", "-q", "--cached", ".mreg")
    shutil.rmtree(upstream / ".mreg")
    commit_link(upstream, ".mreg", home_stand_in)
    clone = clone_of(upstream, tmp_path, monkeypatch)
    before = snapshot(home_stand_in)

    for command in (["init"], ["pull"], ["status"]):
        assert_refused(run(*command), ".mreg")

    outside_untouched(home_stand_in, before)
    assert (clone / ".mreg").is_symlink()


def test_the_python_api_refuses_a_hostile_clone_too(upstream, home_stand_in, tmp_path, monkeypatch):
    plant_cache_link(upstream, home_stand_in)
    clone_of(upstream, tmp_path, monkeypatch)
    before = snapshot(home_stand_in)

    with pytest.raises(UnsafeRepository, match=r"commits a symbolic link \.mreg/cache/data"):
        mreg.load_state_dict("model")
    with pytest.raises(UnsafeRepository, match=r"\.mreg/cache/data"):
        mreg.ModelRegistry().load_model("model")

    outside_untouched(home_stand_in, before)


def test_planted_state_cannot_make_planted_weights_look_in_sync(
    upstream, tmp_path, monkeypatch, run
):
    """The attacker commits weights of their own and a state.json recording them as restored."""
    make_safetensors(upstream / "model.safetensors", seed=666)
    assert run("status").exit_code == 0  # the planted file's hash enters the state
    state = upstream / ".mreg" / "state.json"
    data = json.loads(state.read_text())
    data["restored"]["model.safetensors"] = {
        "content": Repo(upstream).target("model").manifest.content_key(),
        "sha256": sha256_path(upstream / "model.safetensors"),
    }
    state.write_text(json.dumps(data))
    git(upstream, "add", "-f", "model.safetensors", ".mreg/state.json")
    git(upstream, "commit", "-q", "-m", "planted")
    clone_of(upstream, tmp_path, monkeypatch)

    assert_refused(run("status"), ".mreg/state.json")
    assert_refused(run("diff"), ".mreg/state.json")
    assert_refused(run("pull"), ".mreg/state.json")


def test_a_link_the_user_made_for_the_cache_is_the_users_own_choice(
    upstream, tmp_path, monkeypatch, run
):
    clone = clone_of(upstream, tmp_path, monkeypatch)
    other_disk = tmp_path / "other-disk"
    other_disk.mkdir()
    (clone / ".mreg").mkdir(exist_ok=True)
    os.symlink(other_disk, clone / ".mreg" / "cache")

    result = run("pull")

    assert result.exit_code == 0, result.stderr
    assert any((other_disk / "data").iterdir())
    assert (clone / "model.safetensors").read_bytes() == (
        upstream / "model.safetensors"
    ).read_bytes()


@pytest.mark.parametrize("into", ["outside", ".git", ".mreg"])
@pytest.mark.parametrize("command", [["pull", "model@v1.0.0"], ["checkout", "model@v1.0.0"]])
def test_a_committed_folder_link_never_makes_a_rollback_write_outside(
    upstream, home_stand_in, tmp_path, monkeypatch, run, command, into
):
    """v1.0.0 kept the model in models/; a later commit made models/ a link to ~/.ssh (or to
    .git/, where a restored file named `config` would be git's own)."""
    (upstream / "models").mkdir()
    make_safetensors(upstream / "models" / "model.safetensors", seed=1)
    git(upstream, "rm", "-q", "model.safetensors.mreg.toml")
    assert run("add", "models/model.safetensors", "--name", "model").exit_code == 0
    assert run("push").exit_code == 0
    commit_all(upstream, "moved")
    assert run("tag", "model", "v1.0.0").exit_code == 0
    git(upstream, "rm", "-r", "-q", "models")
    shutil.rmtree(upstream / "models", ignore_errors=True)
    commit_link(upstream, "models", home_stand_in if into == "outside" else into)
    clone = clone_of(upstream, tmp_path, monkeypatch)
    if command[0] == "checkout":
        assert run("fetch", "model@v1.0.0").exit_code == 0
    before = snapshot(home_stand_in)
    git_files = sorted(p.name for p in (clone / ".git").iterdir())

    assert_refused(run(*command), "models", "symbolic link", into)

    outside_untouched(home_stand_in, before)
    assert sorted(p.name for p in (clone / ".git").iterdir()) == git_files
    assert not list((clone / ".mreg").glob("model.safetensors*"))
    assert (clone / "models").is_symlink()


def test_a_committed_link_at_the_artifact_path_is_refused_then_replaced_not_written_through(
    upstream, home_stand_in, tmp_path, monkeypatch, run
):
    git(upstream, "rm", "-q", "--cached", "model.safetensors.mreg.toml")
    (upstream / ".gitignore").write_text("")
    git(upstream, "add", ".gitignore", "model.safetensors.mreg.toml")
    commit_link(upstream, "model.safetensors", home_stand_in / "authorized_keys")
    clone = clone_of(upstream, tmp_path, monkeypatch)
    before = snapshot(home_stand_in)

    # mreg does not hold what the link shows: refused like any change it does not hold.
    assert_refused(run("pull"), "model.safetensors", "--force")
    outside_untouched(home_stand_in, before)
    assert (clone / "model.safetensors").is_symlink()

    result = run("pull", "--force")

    assert result.exit_code == 0, result.stderr
    outside_untouched(home_stand_in, before)
    restored = clone / "model.safetensors"
    assert not restored.is_symlink()
    assert restored.read_bytes() == make_safetensors(tmp_path / "again.safetensors").read_bytes()


# -- folders whose files name paths outside them ------------------------------------------------


def saved_dataset(folder: Path, rows: list[str]) -> Path:
    import datasets

    datasets.Dataset.from_dict({"text": rows}).save_to_disk(str(folder))
    return folder


def arrow_file(folder: Path) -> Path:
    return next(folder.glob("*.arrow"))


def name_in_state(folder: Path, filename: str) -> None:
    state = json.loads((folder / "state.json").read_text())
    state["_data_files"] = [{"filename": filename}]
    (folder / "state.json").write_text(json.dumps(state))


def secret_by_relative_name(ds: Path, secret: Path) -> None:
    name_in_state(ds, os.path.relpath(arrow_file(secret), ds))


def secret_by_absolute_name(ds: Path, secret: Path) -> None:
    name_in_state(ds, str(arrow_file(secret)))


def secret_by_link(ds: Path, secret: Path) -> None:
    own = arrow_file(ds)
    own.unlink()
    os.symlink(arrow_file(secret), own)


def secret_split(ds: Path, secret: Path) -> None:
    shutil.rmtree(ds)
    train = saved_dataset(ds / "train", ["public"])
    assert train.is_dir()
    (ds / "dataset_dict.json").write_text(
        json.dumps({"splits": ["train", os.path.relpath(secret, ds)]})
    )


def secret_split_by_link(ds: Path, secret: Path) -> None:
    shutil.rmtree(ds)
    saved_dataset(ds / "train", ["public"])
    os.symlink(secret, ds / "test")
    (ds / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))


def cache_data(root: Path) -> list[Path]:
    data = root / ".mreg" / "cache" / "data"
    return sorted(p for p in data.rglob("*") if p.is_file()) if data.exists() else []


@pytest.mark.parametrize(
    "point",
    [
        secret_by_relative_name,
        secret_by_absolute_name,
        secret_by_link,
        secret_split,
        secret_split_by_link,
    ],
    ids=lambda f: f.__name__,
)
def test_a_datasets_folder_naming_an_arrow_file_outside_it_is_refused(repo, run, tmp_path, point):
    pytest.importorskip("datasets")
    secret = saved_dataset(tmp_path / "secret", ["password=hunter2"])
    ds = saved_dataset(repo / "ds", ["public"])
    point(ds, secret)
    before = snapshot(repo)

    line = assert_refused(run("add", "ds"))

    assert "outside the folder" in line or "symbolic link" in line, line
    assert snapshot(repo) == before
    assert cache_data(repo) == []


@pytest.mark.parametrize("where", ["absolute", "relative"])
def test_a_datasets_image_known_by_a_path_outside_its_folder_is_refused(
    repo, run, tmp_path, home_stand_in, where
):
    pytest.importorskip("datasets")
    pytest.importorskip("PIL")
    import datasets
    import pyarrow as pa

    key = home_stand_in / "id_rsa"
    key.write_bytes(b"-----BEGIN OPENSSH PRIVATE KEY-----\n")
    named = str(key) if where == "absolute" else os.path.relpath(key, repo / "pics")
    features = datasets.Features({"image": datasets.Image()})
    rows = {"image": [{"bytes": b"", "path": None}]}
    datasets.Dataset.from_dict(rows, features=features).save_to_disk(str(repo / "pics"))
    shard = arrow_file(repo / "pics")
    with pa.memory_map(str(shard)) as source:
        table = pa.ipc.open_stream(source).read_all()
    path_only = pa.StructArray.from_arrays(
        [pa.nulls(1, pa.binary()), pa.array([named])], ["bytes", "path"]
    )
    table = table.set_column(0, "image", path_only)
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    before = snapshot(repo)

    assert_refused(run("add", "pics", "--skip-bad"), "image", "outside the folder")

    assert snapshot(repo) == before
    assert cache_data(repo) == []


# -- hostile model files ----------------------------------------------------------------------


def safetensors_bytes(header: dict[str, object], data: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


def f32(offsets: tuple[int, int], count: int) -> dict[str, object]:
    return {"dtype": "F32", "shape": [count], "data_offsets": list(offsets)}


def aliased_safetensors(path: Path) -> None:
    """40 tensors viewing the same 64 KiB: 2.5 MiB once stored tensor by tensor."""
    size = 64 << 10
    header = {f"t{i}": f32((0, size), size // 4) for i in range(40)}
    path.write_bytes(safetensors_bytes(header, b"\1" * size))


def overlapping_safetensors(path: Path) -> None:
    header = {"a": f32((0, 64), 16), "b": f32((32, 96), 16)}
    path.write_bytes(safetensors_bytes(header, b"\1" * 96))


def empty_tensor_inside_another(path: Path) -> None:
    header = {"a": f32((0, 64), 16), "b": f32((32, 32), 0)}
    path.write_bytes(safetensors_bytes(header, b"\1" * 64))


def offsets_past_the_end(path: Path) -> None:
    header = {"a": f32((0, 64), 16), "b": f32((64, 128), 16)}
    path.write_bytes(safetensors_bytes(header, b"\1" * 64))


def size_not_shape_times_dtype(path: Path) -> None:
    header = {"a": f32((0, 64), 8)}
    path.write_bytes(safetensors_bytes(header, b"\1" * 64))


def header_longer_than_the_file(path: Path) -> None:
    path.write_bytes(safetensors_bytes({"a": f32((0, 4), 1)}, b"\1" * 4, length=1 << 20))


def huge_header_length(path: Path) -> None:
    path.write_bytes(safetensors_bytes({"a": f32((0, 4), 1)}, b"\1" * 4, length=(1 << 64) - 1))


def truncated_safetensors(path: Path) -> None:
    make_safetensors(path)
    path.write_bytes(path.read_bytes()[:-100])


def torchscript_archive(path: Path) -> None:
    import torch

    torch.jit.script(torch.nn.Linear(2, 2)).save(str(path))


def pickle_bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    write.__name__ = f"garbage_{data.hex()}"
    return write


def pickled_object(path: Path) -> None:
    import torch
    from helpers import Marker

    marker = path.parent.parent / "pwned"
    torch.save({"weight": torch.zeros(3), "payload": Marker(marker)}, path)


HOSTILE_FILES = [
    ("model.safetensors", aliased_safetensors, "overlaps"),
    ("model.safetensors", overlapping_safetensors, "overlaps"),
    ("model.safetensors", empty_tensor_inside_another, "overlaps"),
    ("model.safetensors", offsets_past_the_end, "truncated"),
    ("model.safetensors", size_not_shape_times_dtype, "inconsistent offsets"),
    ("model.safetensors", header_longer_than_the_file, "truncated"),
    ("model.safetensors", huge_header_length, "truncated"),
    ("model.safetensors", truncated_safetensors, "truncated"),
    ("model.pt", torchscript_archive, "TorchScript"),
    ("model.pth", pickle_bytes(b"\x80\x02K\x01K\x02s."), "not a PyTorch checkpoint"),  # IndexError
    ("model.pth", pickle_bytes(b"\x80\x02h\x05."), "not a PyTorch checkpoint"),  # KeyError
    ("model.pth", pickle_bytes(b"\x80\x02J\x01"), "not a PyTorch checkpoint"),  # struct.error
    ("model.pth", pickle_bytes(b"\x80\x020"), "not a PyTorch checkpoint"),
    ("model.pth", pickle_bytes(b""), "not a PyTorch checkpoint"),
    ("model.pth", pickled_object, "weights_only"),
]


@pytest.mark.parametrize(
    ("name", "make", "words"), HOSTILE_FILES, ids=[m.__name__ for _, m, _ in HOSTILE_FILES]
)
def test_a_hostile_model_file_is_refused_in_one_line_and_nothing_enters_the_cache(
    repo, run, tmp_path, recwarn, name, make, words
):
    pytest.importorskip("torch")
    make(repo / name)
    before = snapshot(repo)
    recwarn.clear()

    result = run("add", name)

    assert_refused(result, name, words)
    assert [str(w.message) for w in recwarn if issubclass(w.category, UserWarning)] == []
    assert snapshot(repo) == before
    assert cache_data(repo) == []
    assert not (tmp_path / "pwned").exists()


# -- escape sequences from a repository never reach the terminal raw ---------------------------

SEQUENCES = {
    "csi": ("\x1b[2J\x1b[1;1H", "\\x1b[2J"),
    "osc": ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
    "c1": ("\x9b31m", "\\x9b31m"),
    "bidi": ("\u202egnp.exe", "\\u202egnp.exe"),
    "newline": ("\nmodel (model.safetensors): in sync", "\\nmodel (model.safetensors): in sync"),
}
BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def assert_nothing_raw(*texts: str) -> None:
    """No control character but newlines, and no bidirectional mark, in what was printed."""
    for text in texts:
        raw = [c for c in text if c != "\n" and (ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0)]
        raw += [c for c in text if ord(c) in BIDI]
        assert raw == [], text


def rewrite_manifest(root: Path, rel: str, **changes: object) -> None:
    import dataclasses

    from mreg.repo import manifest as manifests

    manifest = manifests.read(root / rel)
    manifests.write(root / rel, dataclasses.replace(manifest, **changes))


@pytest.fixture
def model_repo(repo: Path, run) -> Path:  # type: ignore[no-untyped-def]
    make_safetensors(repo / "model.safetensors")
    added(run, repo / "model.safetensors", "--meta", "owner=alice")
    commit_all(repo, "model")
    return repo


@pytest.mark.parametrize("sequence", SEQUENCES, ids=str)
@pytest.mark.parametrize(
    "command", [["show", "model"], ["log", "model"], ["diff", "HEAD~1", "HEAD"]], ids=" ".join
)
def test_escape_sequences_in_committed_metadata_and_subjects_are_printed_escaped(
    model_repo, run, sequence, command
):
    raw, escaped = SEQUENCES[sequence]
    rewrite_manifest(model_repo, "model.safetensors.mreg.toml", meta={"owner": raw, f"k{raw}": "v"})
    commit_all(model_repo, f"subject {raw}")

    result = run(*command)

    assert result.exit_code == 0, result.stderr
    assert_nothing_raw(result.stdout, result.stderr)
    lines = result.stdout.splitlines()
    assert not [line for line in lines if line.startswith("model (model.safetensors)")]
    if not (command[0] == "log" and sequence == "newline"):  # git joins a subject's lines
        assert escaped in result.stdout


@pytest.mark.parametrize("sequence", ["csi", "osc", "c1", "bidi"])
@pytest.mark.parametrize("command", [["ls"], ["status"], ["checkout", "--force"]], ids=" ".join)
def test_a_file_name_with_escape_sequences_is_printed_escaped(repo, run, sequence, command):
    raw, escaped = SEQUENCES[sequence]
    make_safetensors(repo / f"m{raw}.safetensors")
    assert run("add", f"m{raw}.safetensors", "--name", "evil").exit_code == 0

    result = run(*command)

    assert result.exit_code == 0, result.stderr
    assert_nothing_raw(result.stdout, result.stderr)
    assert escaped.replace("[", "\\[") in result.stdout.replace("[", "\\[")


@pytest.mark.parametrize("sequence", SEQUENCES, ids=str)
@pytest.mark.parametrize("command", [["ls"], ["status"], ["show", "model"], ["pull"]], ids=" ".join)
def test_a_committed_manifest_whose_name_is_not_a_valid_name_is_refused_in_one_line(
    model_repo, run, sequence, command
):
    raw, escaped = SEQUENCES[sequence]
    rewrite_manifest(model_repo, "model.safetensors.mreg.toml", name=f"model{raw}")
    commit_all(model_repo, "renamed")

    result = run(*command)

    line = assert_refused(result, "model.safetensors.mreg.toml", "invalid artifact name")
    assert_nothing_raw(result.stdout, result.stderr)
    assert escaped in line


@pytest.mark.parametrize("sequence", ["csi", "osc", "c1", "bidi"])
@pytest.mark.parametrize("command", [["models"], ["search", "clf"]], ids=" ".join)
def test_escape_sequences_in_registry_metrics_are_printed_escaped(repo, run, sequence, command):
    raw, escaped = SEQUENCES[sequence]
    make_safetensors(repo / "clf.safetensors")
    registered = run("register", "clf.safetensors", "--name", "clf", "--metric", f"acc{raw}=0.9")
    assert registered.exit_code == 0, registered.stderr

    result = run(*command)

    assert result.exit_code == 0, result.stderr
    assert_nothing_raw(result.stdout, result.stderr)
    assert f"acc{escaped}" in result.stdout


def test_json_output_carries_escape_sequences_json_escaped(model_repo, run):
    raw, _ = SEQUENCES["osc"]
    rewrite_manifest(model_repo, "model.safetensors.mreg.toml", meta={"owner": raw})

    result = run("show", "model", "--json")

    assert result.exit_code == 0, result.stderr
    assert_nothing_raw(result.stdout)
    assert json.loads(result.stdout)["meta"] == {"owner": raw}
