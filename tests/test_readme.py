"""The README runs as written: every fenced block in it is run (or, for the manifest and the
layout, checked against the real thing) by a test here.

A block's test prepares only what the text around the block says exists (a repository set up as
in the quick start, a model file, a tagged version) and then runs the block's text unchanged: bash
blocks with ``bash -e``, python blocks as a script. A new block without a test here fails
``test_every_readme_block_has_a_test``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import init_work_tree, make_safetensors, make_table
from seaweed import ACCESS_KEY, SECRET_KEY, Seaweed

PROJECT = Path(__file__).resolve().parent.parent
README = PROJECT / "README.md"


@dataclass(frozen=True)
class Block:
    language: str
    text: str
    line: int

    @property
    def first_line(self) -> str:
        return self.text.splitlines()[0].strip() if self.text.strip() else ""


def readme_blocks() -> list[Block]:
    blocks, lines = [], README.read_text(encoding="utf-8").splitlines()
    opened: tuple[str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        if line.startswith("```"):
            if opened is None:
                opened, body = (line[3:].strip(), number), []
            else:
                blocks.append(Block(opened[0], "\n".join(body) + "\n", opened[1]))
                opened = None
        elif opened is not None:
            body.append(line)
    assert opened is None, f"README.md:{opened[1]}: the block is never closed"
    return blocks


def the_block(start: str) -> Block:
    """The one block that ``start`` names in ``RUNNERS``."""
    found = [block for block in readme_blocks() if longest_start(block) == start]
    assert len(found) == 1, f"README has {len(found)} blocks starting with {start!r}"
    return found[0]


# -- running what the reader types -----------------------------------------------------------


def shell(cwd: Path, script: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["bash", "-e", "-o", "pipefail", "-c", script],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def python_script(cwd: Path, code: str, env: dict[str, str] | None = None) -> str:
    script = cwd / "readme_block.py"
    script.write_text(code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )
    script.unlink()
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def mreg(cwd: Path, *args: str) -> str:
    return shell(cwd, " ".join(["mreg", *args]))


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def quick_start_repo(path: Path, remote: Path) -> Path:
    """A repository set up as the quick start does, with a local-directory remote ``origin``."""
    init_work_tree(path)
    mreg(path, "init")
    mreg(path, "remote", "add", "origin", str(remote), "--default")
    git(path, "add", ".mreg")
    git(path, "commit", "-qm", "mreg init")
    return path


def commit(path: Path, message: str) -> None:
    git(path, "add", "-A")
    git(path, "commit", "-qm", message)


# -- one test per block ----------------------------------------------------------------------


def overview(tmp_path: Path, _seaweed: Seaweed) -> None:
    """The first block: add, commit, tag, push, diff two versions, roll back."""
    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    old = make_safetensors(repo / "model.safetensors", seed=0).read_bytes()
    mreg(repo, "add", "model.safetensors")
    commit(repo, "model v0.9.0")
    mreg(repo, "tag", "model", "v0.9.0")
    make_safetensors(repo / "model.safetensors", seed=1)
    block = the_block("$ mreg add model.safetensors").text.splitlines()
    output = shell(repo, "\n".join(line.removeprefix("$ ") for line in block))
    assert "changed" in output  # the diff of v0.9.0 and v1.0.0
    assert (repo / "model.safetensors").read_bytes() == old  # rolled back
    assert "model@v1.0.0" in git(repo, "tag")


def quick_start(tmp_path: Path, seaweed: Seaweed) -> None:
    """The quick start against a real S3 server: credentials and endpoint from AWS variables."""
    seaweed.create_bucket("my-bucket")
    project = tmp_path / "project"
    project.mkdir()
    weights = make_pth_file(project / "weights.pth")
    make_table(project / "train.parquet", rows=500)
    table = pq.read_table(project / "train.parquet")
    environment = {
        "AWS_ENDPOINT_URL": seaweed.endpoint,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    shell(project, the_block("git init && mreg init").text, environment)
    teammate = tmp_path / "teammate"
    assert (teammate / "weights.pth").read_bytes() != b""
    assert pq.read_table(teammate / "train.parquet").equals(table)
    import torch

    restored = torch.load(teammate / "weights.pth", weights_only=True)
    assert all(torch.equal(restored[key], weights[key]) for key in weights)


def make_pth_file(path: Path) -> dict:
    import torch

    weights = torch.nn.Linear(10, 2).state_dict()
    torch.save(weights, path)
    return weights


def registry_blocks(tmp_path: Path, _seaweed: Seaweed) -> None:
    """The registry's two blocks, one after the other as the reader runs them, in a quick-start
    repository; the Transformers model comes from a Hub cache this test fills (offline)."""
    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    hf_home = tmp_path / "hf"
    fill_hub_cache(hf_home, "prajjwal1/bert-tiny")
    first = the_block("import mreg, torch").text
    second = the_block("from transformers import")
    environment = {"HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    python_script(repo, first + second.text, environment)
    tags = git(repo, "tag").split()
    assert {"classifier@v0.1.0", "classifier#prod#1", "sentiment@v0.1.0"} <= set(tags)
    pushed = {p.name for p in (tmp_path / "store" / "data").iterdir()}
    manifest = tomllib.loads(git(repo, "show", "classifier@v0.1.0:" + classifier_manifest(repo)))
    assert {Path(f["path"]).name for f in manifest["lance"]["files"]} <= pushed


def classifier_manifest(repo: Path) -> str:
    listed = git(repo, "ls-tree", "-r", "--name-only", "classifier@v0.1.0").split()
    return next(name for name in listed if name.endswith(".mreg.toml") and "classifier" in name)


def fill_hub_cache(hf_home: Path, repo_id: str) -> None:
    """What ``from_pretrained(repo_id)`` finds offline: a tiny BERT and its tokenizer in the Hub
    cache layout (``models--ORG--NAME/refs/main`` -> ``snapshots/COMMIT/``)."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    commit = "0" * 40
    cached = hf_home / "hub" / f"models--{repo_id.replace('/', '--')}"
    snapshot = cached / "snapshots" / commit
    snapshot.mkdir(parents=True)
    (cached / "refs").mkdir()
    (cached / "refs" / "main").write_text(commit)
    config = BertConfig(
        vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=32, max_position_embeddings=64, num_labels=2,
    )  # fmt: skip
    BertForSequenceClassification(config).save_pretrained(snapshot)
    vocab = snapshot / "vocab.txt"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "good", "bad", "movie"]
    vocab.write_text("\n".join(words) + "\n")
    BertTokenizer(str(vocab)).save_pretrained(snapshot)


def python_api(tmp_path: Path, _seaweed: Seaweed) -> None:
    """In a quick-start repository where ``net`` and ``train`` were tagged v1.0.0 and pushed."""
    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    make_safetensors(repo / "weights.safetensors", seed=0)
    make_table(repo / "train.parquet", rows=300)
    mreg(repo, "add", "weights.safetensors", "--name", "net")
    mreg(repo, "add", "train.parquet")
    commit(repo, "net and train")
    mreg(repo, "tag", "net", "v1.0.0")
    mreg(repo, "tag", "train", "v1.0.0")
    mreg(repo, "push")
    make_safetensors(repo / "weights.safetensors", seed=1)  # the new weights the block adds
    code = the_block("import mreg").text
    python_script(repo, code + "assert ds.count_rows() == 300 and len(state_dict) == 6\n")
    manifest = tomllib.loads((repo / "weights.safetensors.mreg.toml").read_text())
    assert manifest["meta"] == {"owner": "ml"}


def pytorch(tmp_path: Path, seaweed: Seaweed) -> None:
    """In a repository where the image folder ``flowers`` was tagged v1.0.0 and pushed to the S3
    remote ``s3``, and ``classifier`` v2.0.0 was trained on it."""
    bucket = f"readme-torch-{os.getpid()}"
    seaweed.create_bucket(bucket)
    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    make_flowers(repo / "flowers", per_class=16)
    mreg(repo, "add", "flowers")
    commit(repo, "flowers")
    mreg(repo, "tag", "flowers", "v1.0.0")
    save_linear_classifier(repo / "classifier.safetensors")
    mreg(repo, "add", "classifier.safetensors")
    commit(repo, "classifier")
    mreg(repo, "tag", "classifier", "v2.0.0")
    shell(
        repo,
        f"mreg remote add s3 s3://{bucket}/team --endpoint-url {seaweed.endpoint} "
        f"--region us-east-1 && mreg push -r s3",
        {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY},
    )
    code = the_block("import torch").text
    environment = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    output = python_script(repo, code, environment)
    assert "['daisy', 'rose', 'tulip']" in output


def make_flowers(folder: Path, per_class: int) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("daisy", "rose", "tulip"):
        (folder / label).mkdir(parents=True)
        for index in range(per_class):
            pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / label / f"{index:03}.png")


def save_linear_classifier(path: Path) -> None:
    import torch
    from safetensors.torch import save_file

    save_file(torch.nn.Linear(3 * 32 * 32, 3).state_dict(), str(path))


def demo(tmp_path: Path, seaweed: Seaweed) -> None:
    """The demo's block, offline; its S3 line against the test's S3 server."""
    bucket = f"readme-demo-{os.getpid()}"
    seaweed.create_bucket(bucket)
    project = tmp_path / "project"
    project.mkdir()
    script = the_block("git init && mreg demo train").text
    script = re.sub(r"--bucket B\b", f"--bucket {bucket}", script)
    script = script.replace("http://127.0.0.1:8333", seaweed.endpoint)
    script = re.sub(r"--aws-access-key K\b", f"--aws-access-key {ACCESS_KEY}", script)
    script = re.sub(r"--aws-secret-key S\b", f"--aws-secret-key {SECRET_KEY}", script)
    script = script.replace("python examples/", f"python {PROJECT}/examples/")
    shell(project, script, {"MREG_DEMO_CACHE": str(tmp_path / "demo-cache")})
    tags = git(project, "tag").split()
    assert sum(tag.startswith("digits-resnet18@") for tag in tags) == 4


def manifest(tmp_path: Path, _seaweed: Seaweed) -> None:
    """The documented manifest has the sections and keys of one that `mreg add` writes."""
    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    make_pth_file(repo / "classifier.pth")
    mreg(repo, "add", "classifier.pth", "--meta", "task=flower-species")
    written = tomllib.loads((repo / "classifier.pth.mreg.toml").read_text())
    documented = tomllib.loads(the_block("# mreg manifest").text)
    assert shape_of(documented) == shape_of(written)


def shape_of(table: dict) -> dict:
    """Keys, recursively, with one representative entry of each list of tables."""
    shape: dict = {}
    for key, value in table.items():
        if isinstance(value, dict):
            shape[key] = shape_of(value)
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            shape[key] = [shape_of(value[0])]
        else:
            shape[key] = type(value).__name__
    return shape


def layout(_tmp_path: Path, _seaweed: Seaweed) -> None:
    """Every folder the layout names exists, and every package of mreg is named."""
    text = the_block("mreg/cli/").text
    named = {line.split()[0].rstrip("/") for line in text.splitlines() if line.strip()}
    named |= {word.rstrip(";,:") for word in text.split() if word.startswith("mreg/")}
    for path in named:
        assert (PROJECT / path).exists(), f"the layout names {path}, which does not exist"
    folders = (PROJECT / "mreg").iterdir()
    packages = {f"mreg/{p.name}" for p in folders if (p / "__init__.py").exists()}
    assert packages <= named, f"the layout leaves out {sorted(packages - named)}"


def data_manager(tmp_path: Path, _seaweed: Seaweed) -> None:
    """The data manager's two blocks, one after the other, in a quick-start repository."""
    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    make_table(repo / "train.parquet", rows=1000)
    make_table(repo / "more.parquet", rows=200, start=1000)
    first = pq.read_table(repo / "train.parquet")
    output = shell(repo, the_block("mreg add train.parquet --meta owner=ml").text)
    assert "train" in output  # found by the search: 1,200 rows, a label column
    assert pq.read_table(repo / "train.parquet").equals(first)  # rolled back to v1.0.0
    output = python_script(repo, the_block("from mreg import DataManager").text)
    assert "DatasetEntry" in output
    assert pq.read_table(repo / "train.parquet").num_rows == 1200  # v1.1.0 again
    assert "train@v1.0.0!" in git(repo, "tag").split()


def serve_blocks(tmp_path: Path, _seaweed: Seaweed) -> None:
    """The two client blocks of the Serve section, in a folder with no clone, against a real
    ``mreg serve`` of a repository where ``digits_clf`` has a version in ``prod``."""
    from serve_helpers import WRITER, mreg_serve

    repo = quick_start_repo(tmp_path / "project", tmp_path / "store")
    model = make_safetensors(tmp_path / "clf.safetensors", seed=3)
    mreg(repo, "register", str(model), "--name", "digits_clf")
    mreg(repo, "stage", "digits_clf", "v0.1.0", "prod")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with mreg_serve(repo) as server:
        env = {"MREG_SERVER_URL": server.url, "MREG_SERVER_TOKEN": WRITER}
        output = python_script(elsewhere, the_block("# a program without a clone").text, env)
        assert output.splitlines()[0] == "v0.1.0"
        output = shell(elsewhere, the_block("# the same from a shell").text, env)
    answer, _, listing = output.partition("\n")
    assert '"version":"v0.1.0"' in answer
    assert "digits_clf" in listing and "prod" in listing  # `mreg --server URL models`
    assert (elsewhere / "clf.safetensors").read_bytes() == model.read_bytes()


# The first line of each block (its start) -> what runs it.
RUNNERS: dict[str, Callable[[Path, Seaweed], None]] = {
    "$ mreg add model.safetensors": overview,
    "git init && mreg init": quick_start,
    "import mreg, torch": registry_blocks,
    "from transformers import": registry_blocks,
    "import mreg": python_api,
    "from mreg import DataManager": data_manager,
    "mreg add train.parquet --meta owner=ml": data_manager,
    "import torch": pytorch,
    "git init && mreg demo train": demo,
    "# mreg manifest": manifest,
    "mreg/cli/": layout,
    "# a program without a clone": serve_blocks,
    "# the same from a shell": serve_blocks,
}


def longest_start(block: Block) -> str | None:
    """The longest start in ``RUNNERS`` that the block's first line has (``import mreg, torch``
    before ``import mreg``)."""
    starts = [start for start in RUNNERS if block.first_line.startswith(start)]
    return max(starts, key=len) if starts else None


def test_every_readme_block_has_a_test():
    blocks = readme_blocks()
    untested = [f"README.md:{b.line}: {b.first_line}" for b in blocks if not longest_start(b)]
    assert not untested, "blocks without a test in tests/test_readme.py:\n" + "\n".join(untested)


@pytest.mark.slow
@pytest.mark.parametrize("runner", sorted(set(RUNNERS.values()), key=lambda r: r.__name__))
def test_the_readme_block_runs_as_written(runner, tmp_path, seaweed):
    runner(tmp_path, seaweed)
