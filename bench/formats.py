"""Folder formats benchmark: mreg against DVC (and a raw boto3 transfer) on a real S3 server.

    python bench/formats.py [--images 20000] [--model-mib 1024] [--skip-dvc] [--repeat 1]

Two folders, each pushed and pulled by every contender, each contender in a fresh bucket of one
SeaweedFS server on loopback:

* ``images``: ``--images`` small PNG files (32x32 RGB noise, ~3 KiB each) in 10 class
  sub-folders; mreg stores them as one Lance dataset (the ``images`` converter), DVC as one
  object per file. Then the read-back: every image's bytes through Lance (``mreg.open`` in the
  clone) against every file read with ``open().read()``.
* ``model``: a Hugging Face-style sharded model folder of ``--model-mib`` MiB (config.json,
  ``model-0000x-of-0000y.safetensors`` shards, the index, tokenizer.json, vocab.txt); mreg (the
  ``transformers`` converter), DVC, and a raw boto3 transfer of the same files.

Reuses the helpers of ``bench/core.py``; see bench/README.md for what every column means.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
import tomllib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from boto3.s3.transfer import create_transfer_manager

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core
from core import Bench, BenchError, Timing, log

ROOT = core.ROOT
MB = 1_000_000
IMAGE_SIDE = 32
IMAGE_CLASSES = 10
MODEL_LAYERS = 24
MODEL_SHARDS = 5
TOKENIZER_WORDS = 8000
READ_ROUNDS = 3
DVC_VENV = ROOT / "bench" / ".work" / "dvc-venv"  # the one core.py makes and uses

# Run in a child process with the benchmark's environment (the mreg snapshot on PYTHONPATH):
# reads every file of the pulled folder, then every image through Lance. Imports are done
# before any clock starts; both reads find the page cache warm (the pull has just written it).
READ_BACK = """
import json, os, sys, time
import pyarrow.compute as pc
import mreg

clone, name, folder, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

def read_files():
    count = size = 0
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for file in sorted(files):
            with open(os.path.join(root, file), "rb") as handle:
                size += len(handle.read())
            count += 1
    return count, size

files_s = []
for _ in range(rounds):
    start = time.perf_counter()
    files, file_bytes = read_files()
    files_s.append(time.perf_counter() - start)

start = time.perf_counter()
dataset = mreg.open(name, repo=clone)
open_s = time.perf_counter() - start
scan_s = []
for _ in range(rounds):
    start = time.perf_counter()
    table = dataset.to_table(columns=["image", "label"])
    scan_s.append(time.perf_counter() - start)
lance_bytes = pc.sum(pc.binary_length(table.column("image"))).as_py()
print(json.dumps({
    "files": files, "file_bytes": file_bytes, "files_read_s": min(files_s),
    "rows": table.num_rows, "lance_bytes": lance_bytes, "open_s": open_s,
    "scan_s": min(scan_s),
}))
"""

Results = dict[str, dict[str, Timing]]


@dataclass
class Inputs:
    images: Path
    model: Path
    image_count: int
    image_bytes: int
    model_bytes: int
    images_digest: str
    model_digest: str


@dataclass
class ReadBack:
    """Reading every image of the pulled folder: as files, and as rows of the Lance dataset."""

    images: int
    files_read_s: float
    open_s: float
    scan_s: float

    @property
    def lance_s(self) -> float:
        return self.open_s + self.scan_s


# -- inputs ---------------------------------------------------------------------------------


def make_images(folder: Path, count: int, seed: int) -> None:
    """``count`` PNG files of 32x32 RGB noise over a gradient, spread over class sub-folders."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 96, IMAGE_SIDE, dtype=np.float32)
    base = (ramp[:, None, None] + ramp[None, :, None]).astype(np.uint8)
    for label in range(IMAGE_CLASSES):
        (folder / f"class_{label:02d}").mkdir(parents=True)
    for index in range(count):
        noise = rng.integers(0, 160, (IMAGE_SIDE, IMAGE_SIDE, 3), dtype=np.uint8)
        pixels = base + noise
        path = folder / f"class_{index % IMAGE_CLASSES:02d}" / f"img_{index:06d}.png"
        Image.fromarray(pixels, "RGB").save(path, format="PNG")


def model_shapes(size_mib: int) -> tuple[int, dict[str, tuple[int, ...]]]:
    """A BERT-like tensor list of about ``size_mib`` MiB of float32: the hidden size and shapes."""
    per_hidden_sq = MODEL_LAYERS * 12 * 4  # 4 h*h attention + 2 h*4h feed-forward, 4 bytes each
    hidden = max(32, round(math.sqrt(size_mib * core.MIB / per_hidden_sq) / 32) * 32)
    inner = 4 * hidden
    shapes: dict[str, tuple[int, ...]] = {
        "bert.embeddings.word_embeddings.weight": (TOKENIZER_WORDS, hidden),
        "bert.embeddings.position_embeddings.weight": (512, hidden),
        "bert.embeddings.LayerNorm.weight": (hidden,),
        "bert.embeddings.LayerNorm.bias": (hidden,),
    }
    for layer in range(MODEL_LAYERS):
        prefix = f"bert.encoder.layer.{layer}"
        for part in ("attention.self.query", "attention.self.key", "attention.self.value"):
            shapes[f"{prefix}.{part}.weight"] = (hidden, hidden)
            shapes[f"{prefix}.{part}.bias"] = (hidden,)
        shapes[f"{prefix}.attention.output.dense.weight"] = (hidden, hidden)
        shapes[f"{prefix}.attention.output.dense.bias"] = (hidden,)
        shapes[f"{prefix}.attention.output.LayerNorm.weight"] = (hidden,)
        shapes[f"{prefix}.attention.output.LayerNorm.bias"] = (hidden,)
        shapes[f"{prefix}.intermediate.dense.weight"] = (inner, hidden)
        shapes[f"{prefix}.intermediate.dense.bias"] = (inner,)
        shapes[f"{prefix}.output.dense.weight"] = (hidden, inner)
        shapes[f"{prefix}.output.dense.bias"] = (hidden,)
        shapes[f"{prefix}.output.LayerNorm.weight"] = (hidden,)
        shapes[f"{prefix}.output.LayerNorm.bias"] = (hidden,)
    return hidden, shapes


def split_shards(shapes: dict[str, tuple[int, ...]], shards: int) -> list[list[str]]:
    """Tensors in order, cut into ``shards`` groups of about equal bytes."""
    total = sum(math.prod(shape) for shape in shapes.values())
    groups: list[list[str]] = [[]]
    filled = 0
    for name, shape in shapes.items():
        if filled >= total * len(groups) / shards and len(groups) < shards:
            groups.append([])
        groups[-1].append(name)
        filled += math.prod(shape)
    return groups


def make_model(folder: Path, size_mib: int, seed: int) -> None:
    """A Hugging Face-style sharded model folder of random float32 tensors."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True)
    hidden, shapes = model_shapes(size_mib)
    config = {
        "architectures": ["BertModel"],
        "model_type": "bert",
        "hidden_size": hidden,
        "num_hidden_layers": MODEL_LAYERS,
        "num_attention_heads": max(1, hidden // 64),
        "intermediate_size": 4 * hidden,
        "vocab_size": TOKENIZER_WORDS,
        "max_position_embeddings": 512,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "torch_dtype": "float32",
        "transformers_version": "5.23.0",
    }
    (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    rng = np.random.default_rng(seed)
    groups = split_shards(shapes, MODEL_SHARDS)
    weight_map: dict[str, str] = {}
    total = 0
    for number, names in enumerate(groups, start=1):
        shard = f"model-{number:05d}-of-{len(groups):05d}.safetensors"
        arrays = {name: rng.random(shapes[name], dtype=np.float32) for name in names}
        save_file(arrays, str(folder / shard), metadata={"format": "pt"})
        total += sum(array.nbytes for array in arrays.values())
        weight_map.update(dict.fromkeys(names, shard))
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2) + "\n")
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    words += [f"tok{i}" for i in range(TOKENIZER_WORDS - len(words))]
    (folder / "vocab.txt").write_text("\n".join(words) + "\n")
    tokenizer = {
        "version": "1.0",
        "normalizer": {"type": "BertNormalizer", "lowercase": True},
        "pre_tokenizer": {"type": "BertPreTokenizer"},
        "model": {
            "type": "WordPiece",
            "unk_token": "[UNK]",
            "vocab": {word: i for i, word in enumerate(words)},
        },
    }
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer) + "\n")


def tree_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file())


def tree_digest(folder: Path) -> str:
    """sha256 over every file's relative path and sha256, in sorted order."""
    digest = hashlib.sha256()
    for path in tree_files(folder):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        digest.update(core.sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def tree_bytes(folder: Path) -> int:
    return sum(path.stat().st_size for path in tree_files(folder))


def make_inputs(folder: Path, args: argparse.Namespace) -> Inputs:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    images, model = folder / "images", folder / "model"
    start = time.perf_counter()
    make_images(images, args.images, seed=1)
    log(f"  {args.images:,} images in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    make_model(model, args.model_mib, seed=2)
    log(f"  model folder in {time.perf_counter() - start:.1f} s")
    return Inputs(
        images=images,
        model=model,
        image_count=len(tree_files(images)),
        image_bytes=tree_bytes(images),
        model_bytes=tree_bytes(model),
        images_digest=tree_digest(images),
        model_digest=tree_digest(model),
    )


def check_tree(expected: str, restored: Path, who: str) -> None:
    """The pulled folder holds the same file names and bytes as the input."""
    if not restored.is_dir():
        raise BenchError(f"{who}: {restored} was not restored")
    if tree_digest(restored) != expected:
        raise BenchError(f"{who}: {restored} differs from the input (file list or bytes)")


# -- contenders -----------------------------------------------------------------------------


def manifest_name(repo: Path, artifact: str) -> str:
    with open(repo / f"{artifact}.mreg.toml", "rb") as handle:
        return str(tomllib.load(handle)["name"])


def read_back(bench: Bench, clone: Path, name: str, folder: Path) -> ReadBack:
    command: list[str | Path] = [sys.executable, "-c", READ_BACK, clone, name, folder]
    command.append(str(READ_ROUNDS))
    found = json.loads(core.run(command, clone, bench.env).strip().splitlines()[-1])
    if found["files"] != found["rows"] or found["file_bytes"] != found["lance_bytes"]:
        raise BenchError(f"read-back saw different images through Lance and as files: {found}")
    return ReadBack(found["rows"], found["files_read_s"], found["open_s"], found["scan_s"])


def mreg_case(bench: Bench, case: str, source: Path, digest: str) -> Timing:
    """mreg add + push of the folder from one repo, pull into a clone (empty cache)."""
    bucket = bench.bucket(f"mreg-{case}")
    folder = bench.folder(f"mreg-{case}")
    repo = core.mreg_repo(bench, bucket, folder)
    core.copy_artifact(source, repo / source.name)
    add_s, push_s, pushed = core.mreg_push(bench, repo, [source.name])
    core.git_commit(repo, bench.env, f"add {source.name}")
    objects = core.bucket_objects(bench.server, bucket)
    clone = core.git_clone(repo, bench.env)
    pull_s, _ = core.timed([bench.mreg, "pull"], clone, bench.env)
    check_tree(digest, clone / source.name, "mreg pull")
    notes = {"push": pushed, "objects": str(len(objects))}
    if case == "images":
        found = read_back(bench, clone, manifest_name(repo, source.name), clone / source.name)
        notes.update(
            files_read_s=f"{found.files_read_s:.3f}",
            open_s=f"{found.open_s:.3f}",
            scan_s=f"{found.scan_s:.3f}",
        )
    bench.done(folder)
    return Timing(push_s, pull_s, add_s, sum(objects.values()), notes)


def dvc_case(bench: Bench, case: str, source: Path, digest: str) -> Timing:
    """dvc add + dvc push of the folder from one repo, dvc pull into a clone (empty cache)."""
    assert bench.dvc is not None
    bucket = bench.bucket(f"dvc-{case}")
    folder = bench.folder(f"dvc-{case}")
    repo = core.dvc_repo(bench, bench.dvc, bucket, folder)
    core.copy_artifact(source, repo / source.name)
    add_s, _ = core.timed([bench.dvc, "add", source.name], repo, bench.env)
    push_s, _ = core.timed([bench.dvc, "push"], repo, bench.env)
    core.git_commit(repo, bench.env, f"add {source.name}")
    objects = core.bucket_objects(bench.server, bucket)
    clone = core.git_clone(repo, bench.env)
    pull_s, _ = core.timed([bench.dvc, "pull"], clone, bench.env)
    check_tree(digest, clone / source.name, "dvc pull")
    bench.done(folder)
    return Timing(push_s, pull_s, add_s, sum(objects.values()), {"objects": str(len(objects))})


def raw_case(bench: Bench, case: str, source: Path, digest: str) -> Timing:
    """Every file of the folder through one boto3 transfer manager (16 MiB parts, 16 threads
    shared by all files), up and then down into a fresh folder: the floor for any tool."""
    bucket = bench.bucket(f"raw-{case}")
    folder = bench.folder(f"raw-{case}")
    client = core.s3_client(bench.server, core.RAW_FILE_THREADS)
    names = [p.relative_to(source).as_posix() for p in tree_files(source)]
    dest = folder / source.name
    for name in names:
        (dest / name).parent.mkdir(parents=True, exist_ok=True)

    def upload() -> None:
        with create_transfer_manager(client, core.RAW_LARGE) as manager:
            futures = [manager.upload(str(source / n), bucket, f"raw/{n}") for n in names]
            for future in futures:
                future.result()

    def download() -> None:
        with create_transfer_manager(client, core.RAW_LARGE) as manager:
            futures = [manager.download(bucket, f"raw/{n}", str(dest / n)) for n in names]
            for future in futures:
                future.result()

    push_s = core.clock(upload)
    pull_s = core.clock(download)
    check_tree(digest, dest, "raw download")
    objects = core.bucket_objects(bench.server, bucket)
    bench.done(folder)
    return Timing(push_s, pull_s, stored_bytes=sum(objects.values()))


# -- running --------------------------------------------------------------------------------


def run_once(bench: Bench, inputs: Inputs) -> Results:
    results: Results = {"images": {}, "model": {}}
    log(f"images: mreg ({inputs.image_count:,} files)")
    results["images"]["mreg"] = mreg_case(bench, "images", inputs.images, inputs.images_digest)
    if bench.dvc:
        log("images: dvc")
        results["images"]["dvc"] = dvc_case(bench, "images", inputs.images, inputs.images_digest)
    log(f"model: raw boto3 ({core.human_bytes(inputs.model_bytes)})")
    results["model"]["raw"] = raw_case(bench, "model", inputs.model, inputs.model_digest)
    log("model: mreg")
    results["model"]["mreg"] = mreg_case(bench, "model", inputs.model, inputs.model_digest)
    if bench.dvc:
        log("model: dvc")
        results["model"]["dvc"] = dvc_case(bench, "model", inputs.model, inputs.model_digest)
    return results


def median_results(rounds: list[Results]) -> Results:
    return {
        case: {name: core.median_timing([r[case][name] for r in rounds]) for name in timings}
        for case, timings in rounds[0].items()
    }


def measure(
    work: Path, args: argparse.Namespace, inputs: Inputs, env: dict[str, str], dvc: Path | None
) -> tuple[list[Results], dict[str, str]]:
    """Start the server, run every round, stop the server; the rounds and the environment."""
    meter = core.CpuMeter()
    server = core.start_server(work / "seaweed")
    bench = Bench(server, work, env, core.mreg_binary(), dvc, args.keep)
    rounds: list[Results] = []
    try:
        info = core.environment(bench)
        for number in range(args.repeat):
            if args.repeat > 1:
                log(f"round {number + 1} of {args.repeat}")
            rounds.append(run_once(bench, inputs))
    finally:
        server.stop()
        if not args.keep:
            for name in ("inputs", "runs", "seaweed", "mreg-src"):
                shutil.rmtree(work / name, ignore_errors=True)
    info["other_cpu_share"] = f"{meter.other_share():.1%}"
    return rounds, info


# -- reporting ------------------------------------------------------------------------------


def rate(amount: float, seconds: float | None) -> float | None:
    return amount / seconds if seconds else None


def table_rows(results: Results, inputs: Inputs, images_label: str, model_label: str) -> list[Any]:
    """Per case: add+push, its two parts, and pull, for every contender, with rates."""
    cases = {
        "images": (images_label, float(inputs.image_count), "img/s"),
        "model": (model_label, inputs.model_bytes / MB, "MB/s"),
    }
    rows = []
    for case, (label, amount, unit) in cases.items():
        timings = results[case]
        steps = (
            (f"{label} add+push", "upload_s"),
            ("    of which add", "add_s"),
            ("    of which push", "push_s"),
            (f"{label} pull", "pull_s"),
        )
        for name, attribute in steps:
            seconds = {c: getattr(t, attribute) for c, t in timings.items()}
            rows.append(
                {
                    "scenario": name,
                    "unit": unit,
                    **{f"{c}_s": seconds.get(c) for c in ("mreg", "dvc", "raw")},
                    **{f"{c}_rate": rate(amount, seconds.get(c)) for c in ("mreg", "dvc", "raw")},
                    "mreg_over_raw": core.ratio(seconds.get("mreg"), seconds.get("raw")),
                    "dvc_over_mreg": core.ratio(seconds.get("dvc"), seconds.get("mreg")),
                }
            )
    return rows


def rate_cell(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def print_table(rows: list[dict[str, Any]]) -> None:
    header = (
        f"{'scenario':<24}{'mreg s':>8}{'dvc s':>8}{'raw s':>8}{'unit':>7}{'mreg rate':>11}"
        f"{'dvc rate':>10}{'raw rate':>10}{'mreg/raw':>10}{'dvc/mreg':>10}"
    )
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        print(
            f"{row['scenario']:<24}{core.cell(row['mreg_s']):>8}{core.cell(row['dvc_s']):>8}"
            f"{core.cell(row['raw_s']):>8}{row['unit']:>7}{rate_cell(row['mreg_rate']):>11}"
            f"{rate_cell(row['dvc_rate']):>10}{rate_cell(row['raw_rate']):>10}"
            f"{core.cell(row['mreg_over_raw'], 'x'):>10}{core.cell(row['dvc_over_mreg'], 'x'):>10}"
        )
    print()


def read_back_of(timing: Timing, images: int) -> ReadBack:
    notes = timing.notes
    return ReadBack(
        images, float(notes["files_read_s"]), float(notes["open_s"]), float(notes["scan_s"])
    )


def print_details(results: Results, inputs: Inputs, read: ReadBack) -> None:
    n = read.images
    print(
        f"read back {n:,} images (warm page cache, best of {READ_ROUNDS}): "
        f"Lance `mreg.open` + `to_table(columns=['image','label'])` {read.lance_s:.3f} s = "
        f"{n / read.lance_s:,.0f} img/s (open {read.open_s:.3f} s, scan {read.scan_s:.3f} s = "
        f"{n / read.scan_s:,.0f} img/s); files `open().read()` {read.files_read_s:.3f} s = "
        f"{n / read.files_read_s:,.0f} img/s; Lance is {read.files_read_s / read.lance_s:.2f}x "
        "the files' speed"
    )
    for case, size in (("images", inputs.image_bytes), ("model", inputs.model_bytes)):
        stored = ", ".join(
            f"{name} {core.human_bytes(t.stored_bytes)}"
            + (f" in {t.notes['objects']} objects" if "objects" in t.notes else "")
            for name, t in results[case].items()
        )
        print(f"{case}: input {core.human_bytes(size)}; in the bucket: {stored}")
    checked = ", ".join(results["images"]) + " / " + ", ".join(results["model"])
    print(
        f"checked: every pulled folder equals its input (tree sha256 of names and bytes; "
        f"images {inputs.images_digest[:12]}, model {inputs.model_digest[:12]}): {checked}"
    )


def results_json(results: Results) -> dict[str, Any]:
    return {
        case: {name: {**asdict(t), "upload_s": t.upload_s} for name, t in timings.items()}
        for case, timings in results.items()
    }


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="PNG files in the folder")
    parser.add_argument("--model-mib", type=int, default=1024, help="size of the model folder")
    parser.add_argument("--repeat", type=int, default=1, help="rounds; the table shows medians")
    parser.add_argument("--skip-dvc", action="store_true", help="leave DVC out")
    parser.add_argument("--keep", action="store_true", help="keep repos, inputs and bucket data")
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / ".work" / "formats")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "bench" / ".work" / "formats-results.json"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work_dir.resolve()
    work.mkdir(parents=True, exist_ok=True)
    dvc = None if args.skip_dvc else core.ensure_dvc(DVC_VENV)
    log(f"writing inputs: {args.images:,} PNG images, a {args.model_mib} MiB model folder")
    inputs = make_inputs(work / "inputs", args)
    shutil.rmtree(work / "runs", ignore_errors=True)
    snapshot = core.snapshot_mreg(work)
    env = core.tool_env(snapshot)
    core.check_snapshot(env, snapshot)
    info = {"mreg_source": core.source_fingerprint(snapshot / "mreg")}
    rounds, measured = measure(work, args, inputs, env, dvc)
    info.update(measured)
    results = median_results(rounds)
    model_label = f"{inputs.model_bytes / core.MIB / 1024:.2f} GiB model"
    if inputs.model_bytes < 1024 * core.MIB:
        model_label = f"{inputs.model_bytes / core.MIB:.0f} MiB model"
    rows = table_rows(results, inputs, f"{inputs.image_count:,} images", model_label)
    read = read_back_of(results["images"]["mreg"], inputs.image_count)
    print(f"\nmreg {info['mreg']}, sources {info['mreg_source']}, on {info['cpus']} cores")
    print(f"CPU used by other work on the machine meanwhile: {info['other_cpu_share']}")
    print_table(rows)
    print_details(results, inputs, read)
    path: Path = args.results.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    document = {
        "config": config,
        "environment": info,
        "inputs": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(inputs).items()},
        "table": rows,
        "read_back": {
            **asdict(read),
            "lance_s": read.lance_s,
            "lance_img_per_s": rate(read.images, read.lance_s),
            "scan_img_per_s": rate(read.images, read.scan_s),
            "files_img_per_s": rate(read.images, read.files_read_s),
        },
        "results": results_json(results),
        "rounds": [results_json(r) for r in rounds],
    }
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
