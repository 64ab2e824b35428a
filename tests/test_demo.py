"""`mreg demo train`: the whole lifecycle (inputs in, Lance, push, train, register) on real data.

Offline, as everywhere here: the data set is scikit-learn's digits, rendered as PNG images; a
"downloaded" model comes from an http server on 127.0.0.1; S3 is the session's SeaweedFS. Runs
are kept tiny (a few steps on a few hundred rows): the point is the plumbing, not the accuracy.
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from helpers import assert_refused, snapshot
from seaweed import ACCESS_KEY, SECRET_KEY

from mreg import ModelRegistry, Repo
from mreg.demo.data import lance_split, subset
from mreg.demo.options import DEFAULT_LIMIT
from mreg.demo.resnet import ResNet18, from_state_dict
from mreg.demo.training import evaluate

ROOT = Path(__file__).resolve().parent.parent
TINY = ("--steps", "3", "--batch", "32", "--limit", "300")

# torchvision's resnet18().state_dict(), in order: the names and shapes resnet18-f37072fd.pth
# carries. Written out as the spec, since torchvision itself is not installed here.
TORCHVISION_RESNET18 = """
conv1.weight 64,3,7,7
bn1.weight 64
bn1.bias 64
bn1.running_mean 64
bn1.running_var 64
bn1.num_batches_tracked -
layer1.0.conv1.weight 64,64,3,3
layer1.0.bn1.weight 64
layer1.0.bn1.bias 64
layer1.0.bn1.running_mean 64
layer1.0.bn1.running_var 64
layer1.0.bn1.num_batches_tracked -
layer1.0.conv2.weight 64,64,3,3
layer1.0.bn2.weight 64
layer1.0.bn2.bias 64
layer1.0.bn2.running_mean 64
layer1.0.bn2.running_var 64
layer1.0.bn2.num_batches_tracked -
layer1.1.conv1.weight 64,64,3,3
layer1.1.bn1.weight 64
layer1.1.bn1.bias 64
layer1.1.bn1.running_mean 64
layer1.1.bn1.running_var 64
layer1.1.bn1.num_batches_tracked -
layer1.1.conv2.weight 64,64,3,3
layer1.1.bn2.weight 64
layer1.1.bn2.bias 64
layer1.1.bn2.running_mean 64
layer1.1.bn2.running_var 64
layer1.1.bn2.num_batches_tracked -
layer2.0.conv1.weight 128,64,3,3
layer2.0.bn1.weight 128
layer2.0.bn1.bias 128
layer2.0.bn1.running_mean 128
layer2.0.bn1.running_var 128
layer2.0.bn1.num_batches_tracked -
layer2.0.conv2.weight 128,128,3,3
layer2.0.bn2.weight 128
layer2.0.bn2.bias 128
layer2.0.bn2.running_mean 128
layer2.0.bn2.running_var 128
layer2.0.bn2.num_batches_tracked -
layer2.0.downsample.0.weight 128,64,1,1
layer2.0.downsample.1.weight 128
layer2.0.downsample.1.bias 128
layer2.0.downsample.1.running_mean 128
layer2.0.downsample.1.running_var 128
layer2.0.downsample.1.num_batches_tracked -
layer2.1.conv1.weight 128,128,3,3
layer2.1.bn1.weight 128
layer2.1.bn1.bias 128
layer2.1.bn1.running_mean 128
layer2.1.bn1.running_var 128
layer2.1.bn1.num_batches_tracked -
layer2.1.conv2.weight 128,128,3,3
layer2.1.bn2.weight 128
layer2.1.bn2.bias 128
layer2.1.bn2.running_mean 128
layer2.1.bn2.running_var 128
layer2.1.bn2.num_batches_tracked -
layer3.0.conv1.weight 256,128,3,3
layer3.0.bn1.weight 256
layer3.0.bn1.bias 256
layer3.0.bn1.running_mean 256
layer3.0.bn1.running_var 256
layer3.0.bn1.num_batches_tracked -
layer3.0.conv2.weight 256,256,3,3
layer3.0.bn2.weight 256
layer3.0.bn2.bias 256
layer3.0.bn2.running_mean 256
layer3.0.bn2.running_var 256
layer3.0.bn2.num_batches_tracked -
layer3.0.downsample.0.weight 256,128,1,1
layer3.0.downsample.1.weight 256
layer3.0.downsample.1.bias 256
layer3.0.downsample.1.running_mean 256
layer3.0.downsample.1.running_var 256
layer3.0.downsample.1.num_batches_tracked -
layer3.1.conv1.weight 256,256,3,3
layer3.1.bn1.weight 256
layer3.1.bn1.bias 256
layer3.1.bn1.running_mean 256
layer3.1.bn1.running_var 256
layer3.1.bn1.num_batches_tracked -
layer3.1.conv2.weight 256,256,3,3
layer3.1.bn2.weight 256
layer3.1.bn2.bias 256
layer3.1.bn2.running_mean 256
layer3.1.bn2.running_var 256
layer3.1.bn2.num_batches_tracked -
layer4.0.conv1.weight 512,256,3,3
layer4.0.bn1.weight 512
layer4.0.bn1.bias 512
layer4.0.bn1.running_mean 512
layer4.0.bn1.running_var 512
layer4.0.bn1.num_batches_tracked -
layer4.0.conv2.weight 512,512,3,3
layer4.0.bn2.weight 512
layer4.0.bn2.bias 512
layer4.0.bn2.running_mean 512
layer4.0.bn2.running_var 512
layer4.0.bn2.num_batches_tracked -
layer4.0.downsample.0.weight 512,256,1,1
layer4.0.downsample.1.weight 512
layer4.0.downsample.1.bias 512
layer4.0.downsample.1.running_mean 512
layer4.0.downsample.1.running_var 512
layer4.0.downsample.1.num_batches_tracked -
layer4.1.conv1.weight 512,512,3,3
layer4.1.bn1.weight 512
layer4.1.bn1.bias 512
layer4.1.bn1.running_mean 512
layer4.1.bn1.running_var 512
layer4.1.bn1.num_batches_tracked -
layer4.1.conv2.weight 512,512,3,3
layer4.1.bn2.weight 512
layer4.1.bn2.bias 512
layer4.1.bn2.running_mean 512
layer4.1.bn2.running_var 512
layer4.1.bn2.num_batches_tracked -
fc.weight 1000,512
fc.bias 1000
"""


def torchvision_table() -> list[tuple[str, tuple[int, ...]]]:
    rows = []
    for line in TORCHVISION_RESNET18.strip().splitlines():
        name, shape = line.split()
        rows.append((name, () if shape == "-" else tuple(int(n) for n in shape.split(","))))
    return rows


# -- the model ----------------------------------------------------------------------------


def test_resnet18_has_torchvision_parameter_names_and_shapes_in_order():
    table = torchvision_table()
    assert len(table) == 122
    state = ResNet18().state_dict()
    assert [(name, tuple(t.shape)) for name, t in state.items()] == table
    assert sum(p.numel() for p in ResNet18().parameters()) == 11_689_512


def imagenet_weights(with_batch_counts: bool = False) -> dict[str, torch.Tensor]:
    """A state dict shaped like resnet18-f37072fd.pth (1000 classes; like the old torchvision
    files, without num_batches_tracked unless asked)."""
    torch.manual_seed(1)
    state = ResNet18().state_dict()
    return {
        k: v.clone()
        for k, v in state.items()
        if with_batch_counts or not k.endswith("num_batches_tracked")
    }


def test_imagenet_weights_load_strictly_and_get_a_new_head_for_other_classes():
    weights = imagenet_weights()
    model = from_state_dict(weights, num_classes=10, source="resnet18.pth")
    assert tuple(model.fc.weight.shape) == (10, 512)
    assert torch.equal(model.conv1.weight, weights["conv1.weight"])
    assert torch.equal(model.layer4[1].bn2.running_var, weights["layer4.1.bn2.running_var"])
    # Same number of classes: nothing replaced, the head is the pretrained one.
    same = from_state_dict(weights, num_classes=1000, source="resnet18.pth")
    assert torch.equal(same.fc.weight, weights["fc.weight"])


def test_weights_of_another_architecture_are_refused_by_name():
    weights = imagenet_weights()
    del weights["layer3.0.downsample.0.weight"]
    with pytest.raises(Exception, match=r"other\.pth does not load into ResNet18.*downsample"):
        from_state_dict(weights, num_classes=10, source="other.pth")


# -- the demo, end to end -----------------------------------------------------------------


def manifest_files(repo: Path, name: str) -> list[tuple[str, int]]:
    found = Repo(repo).lookup(name)
    assert found is not None, f"{name} is not tracked"
    return [(f.path, f.size) for f in found[1].files]


def test_demo_train_offline_runs_end_to_end_and_registers_the_model_with_lineage(
    repo: Path, remote_dir: Path, run, tmp_path: Path
):  # type: ignore[no-untyped-def]
    result = run("demo", "train", "--offline", *TINY, "--cache", tmp_path / "downloads")
    assert result.exit_code == 0, result.stderr
    assert "digits-resnet18@v0.1.0" in result.stdout
    assert "accuracy after" in result.stdout and "samples/s" in result.stdout
    assert str(remote_dir) in result.stdout

    # The data set's splits and the registered model are artifacts, all pushed.
    kinds = {t.manifest.name: t.manifest.kind for t in Repo(repo).ls()}
    assert kinds == {
        "digits-train": "dataset",
        "digits-test": "dataset",
        "digits-resnet18": "model",
    }
    assert (repo / "demo/data/digits-train/7").is_dir()
    for name in kinds:
        for path, size in manifest_files(repo, name):
            assert (remote_dir / path).stat().st_size == size, path

    entry = ModelRegistry(repo).get_model_info("digits-resnet18")
    meta = entry.metadata
    assert meta.training_dataset == "digits-train"
    assert meta.training_dataset_version == "digits-train@v1.0.0"
    assert meta.training_epochs == 1
    assert meta.model_class == "mreg.demo.resnet.ResNet18"
    assert meta.init_kwargs == {"num_classes": 10}
    assert set(meta.performance_metrics) >= {"accuracy", "loss", "accuracy_before"}
    assert meta.extra["eval_dataset"] == "digits-test@v1.0.0"

    # The registered weights rebuild the model and score exactly what was recorded.
    model, _ = ModelRegistry(repo).load_model("digits-resnet18")
    assert isinstance(model, ResNet18)
    held_out = subset(lance_split(Repo(repo), "digits-test", "v1.0.0", 32), 300, seed=0)
    again = evaluate(model, held_out)
    assert again.rows == int(meta.extra["eval_rows"]) == 300
    assert again.accuracy == meta.performance_metrics["accuracy"]
    assert again.loss == pytest.approx(meta.performance_metrics["loss"], rel=1e-5)


class _Files(BaseHTTPRequestHandler):
    files: dict[str, bytes]
    requests: list[str]

    def do_GET(self) -> None:
        self.requests.append(self.path)
        body = self.files.get(self.path.lstrip("/"))
        if body is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def weights_server(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """An http server on loopback with ImageNet-shaped ResNet18 weights; yields their URL and
    the list of paths requested."""
    path = tmp_path / "resnet18-imagenet.pth"
    torch.save(imagenet_weights(), path)
    requests: list[str] = []
    handler = type(
        "Handler", (_Files,), {"files": {path.name: path.read_bytes()}, "requests": requests}
    )
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/{path.name}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


@pytest.mark.slow
def test_demo_train_fine_tunes_downloaded_weights_and_downloads_them_once(
    repo: Path, remote_dir: Path, run, tmp_path: Path, weights_server
):  # type: ignore[no-untyped-def]
    url, requests = weights_server
    args = (
        "demo",
        "train",
        "--model",
        url,
        "--dataset",
        "digits",
        "--steps",
        "1",
        "--batch",
        "16",
        "--limit",
        "64",
        "--cache",
        tmp_path / "downloads",
    )
    first = run(*args)
    assert first.exit_code == 0, first.stderr
    assert len(requests) == 1

    # The pretrained weights are an artifact of their own, read back from Lance unchanged.
    pretrained = Repo(repo).lookup("resnet18-imagenet")
    assert pretrained is not None and pretrained[1].source.url == url
    stored = Repo(repo).load_state_dict("resnet18-imagenet")
    assert torch.equal(stored["layer2.0.conv1.weight"], imagenet_weights()["layer2.0.conv1.weight"])
    assert (tmp_path / "downloads/models/resnet18-imagenet.pth").is_file()
    meta = ModelRegistry(repo).get_model_info("digits-resnet18").metadata
    assert meta.extra["base_model"] == url
    model, _ = ModelRegistry(repo).load_model("digits-resnet18")
    assert tuple(model.fc.weight.shape) == (10, 512)

    # Again: the weights are tracked already (no download) and the data sets are unchanged.
    second = run(*args)
    assert second.exit_code == 0, second.stderr
    assert len(requests) == 1
    assert "digits-resnet18@v0.1.1" in second.stdout
    assert ModelRegistry(repo).get_model_info(
        "digits-resnet18"
    ).metadata.training_dataset_version == ("digits-train@v1.0.0")


@pytest.fixture
def transformers_folder(tmp_path: Path) -> Path:
    """A tiny Transformers image classifier (a ResNet built from a config: no download)."""
    from transformers import ResNetConfig, ResNetForImageClassification

    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], num_labels=3)
    folder = tmp_path / "tiny-resnet"
    ResNetForImageClassification(config).save_pretrained(folder)
    return folder


def test_demo_train_takes_a_transformers_folder_and_reads_the_arrow_copy(
    repo: Path, remote_dir: Path, run, transformers_folder: Path
):  # type: ignore[no-untyped-def]
    result = run(
        "demo",
        "train",
        "--offline",
        "--model_mode",
        "transformers",
        "--model",
        transformers_folder,
        "--dataset-mode",
        "arrow",
        *TINY,
    )
    assert result.exit_code == 0, result.stderr
    assert Repo(repo).lookup("tiny-resnet") is not None
    entry = ModelRegistry(repo).get_model_info("digits-transformers")
    assert entry.metadata.training_dataset_version == "digits-train-arrow@v1.0.0"
    assert entry.metadata.extra["dataset_mode"] == "arrow"
    model, _ = ModelRegistry(repo).load_model("digits-transformers")
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


COMMIT = "0123456789abcdef0123456789abcdef01234567"


def fill_datasets_cache(hf_home: Path, repo_id: str) -> None:
    """A Hub image dataset shaped like CIFAR-10 (``img``, ``label`` ClassLabel; train and test),
    prepared into HF_HOME/datasets as a first online ``load_dataset`` leaves it."""
    import io

    import datasets
    import pyarrow as pa
    from PIL import Image

    names = ["red", "green", "blue"]

    def png(label: int, shade: int) -> bytes:
        colour = [0, 0, 0]
        colour[label] = 128 + shade
        buffer = io.BytesIO()
        Image.new("RGB", (16, 16), tuple(colour)).save(buffer, format="PNG")
        return buffer.getvalue()

    class TinyImages(datasets.ArrowBasedBuilder):
        def _info(self) -> datasets.DatasetInfo:
            features = {"img": datasets.Image(), "label": datasets.ClassLabel(names=names)}
            return datasets.DatasetInfo(features=datasets.Features(features))

        def _split_generators(self, dl_manager):  # type: ignore[no-untyped-def]
            return [
                datasets.SplitGenerator(name=name, gen_kwargs={"rows": rows})
                for name, rows in (("train", 48), ("test", 24))
            ]

        def _generate_tables(self, rows):  # type: ignore[no-untyped-def]
            labels = [i % 3 for i in range(rows)]
            images = [{"bytes": png(label, i), "path": None} for i, label in enumerate(labels)]
            yield 0, pa.table({"img": images, "label": labels})

    builder = TinyImages(
        cache_dir=str(hf_home / "datasets"),
        dataset_name=repo_id.split("/")[-1],
        repo_id=repo_id,
        hash=COMMIT,
    )
    builder.download_and_prepare()


@pytest.mark.slow
def test_demo_train_imports_a_hub_dataset_split_by_split_from_the_cache(
    repo: Path, remote_dir: Path, tmp_path: Path
):
    downloads = tmp_path / "downloads"
    fill_datasets_cache(downloads / "huggingface", "org/tiny-images")
    # A fresh interpreter: the Hugging Face libraries read HF_HOME when first imported.
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from mreg.cli import main; main()",
            "demo",
            "train",
            "--offline",
            "--dataset",
            "org/tiny-images",
            "--steps",
            "2",
            "--batch",
            "16",
            "--cache",
            str(downloads),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    train = Repo(repo).lookup("org--tiny-images-train")
    assert train is not None and train[1].rows == 48
    # The seed's default cap on rows per split is part of the source: a rerun with another
    # --limit imports again instead of reusing these rows.
    assert train[1].source.url == (
        f"hf-dataset://org/tiny-images@{COMMIT}?split=train&limit={DEFAULT_LIMIT}"
    )
    meta = ModelRegistry(repo).get_model_info("org--tiny-images-resnet18").metadata
    assert meta.training_dataset_version == "org--tiny-images-train@v1.0.0"
    assert meta.extra["classes"] == '["red", "green", "blue"]'
    assert meta.extra["eval_rows"] == "24"


@pytest.mark.slow
def test_example_script_pushes_to_s3_under_the_prefix_with_keys_kept_out_of_git(
    repo: Path, seaweed, s3_bucket: str
):  # type: ignore[no-untyped-def]
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/train_resnet.py"),
            "--offline",
            "--steps",
            "1",
            "--batch",
            "16",
            "--limit",
            "32",
            "--s3-endpoint",
            seaweed.endpoint,
            "--bucket",
            s3_bucket,
            "--prefix",
            "team/demo",
            "--aws-region",
            "us-east-1",
            "--aws-access-key",
            ACCESS_KEY,
            "--aws-secret-key",
            SECRET_KEY,
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "registered digits-resnet18@v0.1.0" in done.stdout

    listed = seaweed.client().list_objects_v2(Bucket=s3_bucket, Prefix="team/demo/")
    keys = {item["Key"] for item in listed.get("Contents", [])}
    for name in ("digits-train", "digits-test", "digits-resnet18"):
        for path, _ in manifest_files(repo, name):
            assert f"team/demo/{path}" in keys
    assert SECRET_KEY not in (repo / ".mreg/config.toml").read_text()
    local = tomllib.loads((repo / ".mreg/config.local.toml").read_text())
    assert local["remote"]["demo-s3"]["secret_access_key"] == SECRET_KEY


# -- bad options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--model_mode", "nope"), ("--model_mode", "nope", "url|repo|transformers")),
        (("--dataset-mode", "csv"), ("--dataset_mode", "csv")),
        (("--limit", "0"), ("--limit", "at least 1")),
        (("--batch", "-4"), ("--batch", "at least 1")),
        (("--split", "test"), ("--split", "--eval-split")),
        (("--aws-access-key", "K"), ("--aws-secret-key",)),
        (("--s3-endpoint", "http://127.0.0.1:1"), ("--bucket",)),
        (("--model_mode", "repo"), ("needs --model",)),
    ],
)
def test_a_bad_option_is_one_line_and_changes_nothing(repo: Path, run, args, words):  # type: ignore[no-untyped-def]
    before = snapshot(repo)
    assert_refused(run("demo", "train", "--offline", *args), *words)
    assert snapshot(repo) == before


def test_a_model_artifact_that_does_not_exist_is_named(repo: Path, run):  # type: ignore[no-untyped-def]
    result = run("demo", "train", "--offline", "--model_mode", "repo", "--model", "nothing")
    assert result.exit_code != 0
    # Progress notes ("== model: ...") come first on stderr; the error is the one last line.
    *notes, last = result.stderr.strip().splitlines()
    assert all(note.startswith("== ") for note in notes)
    assert last == "error: no artifact named 'nothing' (hint: see `mreg ls`)"


def test_the_example_script_takes_the_same_options_as_the_command(run):  # type: ignore[no-untyped-def]
    def options(text: str) -> set[str]:
        return set(re.findall(r"--[a-z0-9][a-z0-9_-]*", text)) - {"--help"}

    command = run("demo", "train", "--help")
    script = subprocess.run(
        [sys.executable, str(ROOT / "examples/train_resnet.py"), "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert options(command.stdout) == options(script.stdout)
    assert {"--model_mode", "--model-mode", "--dataset_mode", "--s3-endpoint"} <= options(
        script.stdout
    )
