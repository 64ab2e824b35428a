"""Training-input benchmark: images per second a PyTorch training loop receives, decode included.

    python bench/torch_data.py [--n 10000] [--batch-size 256] [--workers 0 2] [--repeat 3]
                               [--epochs 2]

One folder of ``--n`` PNG files (32x32 RGB, 10 class sub-folders, made as bench/formats.py makes
them), read through a ``torch.utils.data.DataLoader`` by seven contenders, each sequentially
(``shuffle=False``) and shuffled, with each ``--workers`` count:

* ``mreg map, cache``: ``mreg.torch.LanceTorchDataset`` on the local cache (``mreg add``);
* ``mreg map, in memory``: the same with ``in_memory=True`` (columns read whole per process);
* ``mreg iterable, cache``: ``mreg.torch.LanceIterableDataset`` (shuffled: chunk order and a
  buffer of 1,024 rows);
* ``mreg map, S3`` and ``mreg iterable, S3``: the same with ``remote="s3"``, after ``mreg push``
  to a SeaweedFS server on loopback, read in place (no download);
* ``PNG folder``: a plain ``torch`` Dataset that opens each file with Pillow;
* ``HF arrow``: a Hugging Face ``datasets`` folder (``save_to_disk`` of the same images as an
  ``Image`` feature, ``load_from_disk(...).with_format("torch")``).

Every sample is decoded to a uint8 tensor and its label to an int; the training loop only
touches each batch. Every configuration runs one warm-up epoch (persistent workers), then
``--epochs`` timed epochs, of which the fastest counts; ``--repeat`` rounds of all of it, and the
table shows the median round. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

sys.path.insert(0, str(Path(__file__).resolve().parent))
import core
from core import log
from formats import IMAGE_CLASSES, make_images
from seaweed import ACCESS_KEY, SECRET_KEY

import mreg
from mreg.config import RemoteConfig
from mreg.torch import LanceIterableDataset, LanceTorchDataset, loader

ROOT = core.ROOT
ORDERS = ("sequential", "shuffled")
GOAL_RANDOM_SHARE = 0.8
MAKE = dict[str, Callable[[bool], Any]]


class PngFolder(Dataset[tuple[torch.Tensor, int]]):
    """The plain way: a list of files, each opened with Pillow when it is asked for."""

    def __init__(self, root: Path) -> None:
        self.files = sorted(root.rglob("*.png"))
        self.classes = sorted(p.name for p in root.iterdir())
        self.class_to_idx = {name: i for i, name in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        path = self.files[index]
        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        tensor = torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1)))
        return tensor, self.class_to_idx[path.parent.name]


# -- inputs ---------------------------------------------------------------------------------


def make_repo(work: Path, n: int) -> Path:
    """A git work tree with mreg, holding the image folder, added and committed."""
    repo = work / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    make_images(repo / "images", n, seed=0)
    mreg.Repo.init(repo).add(repo / "images")
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)
    subprocess.run(["git", "-C", str(repo), "commit", "-q", "-m", "images"], check=True)
    return repo


def push_to_s3(repo: Path, server: core.Seaweed) -> None:
    server.create_bucket("torch-data")
    remote = RemoteConfig(
        name="s3",
        url="s3://torch-data/ml",
        endpoint_url=server.endpoint,
        region="us-east-1",
        access_key_id=ACCESS_KEY,
        secret_access_key=SECRET_KEY,
    )
    handle = mreg.Repo(repo)
    handle.config.add_remote(remote, default=False)
    handle.push(remote="s3")


def make_arrow(images: Path, folder: Path) -> None:
    """The same images as a Hugging Face dataset (bytes embedded), saved with save_to_disk."""
    from datasets import ClassLabel, Features, Image
    from datasets import Dataset as HfDataset

    files = sorted(images.rglob("*.png"))
    names = sorted(p.name for p in images.iterdir())
    features = Features({"image": Image(), "label": ClassLabel(names=names)})
    table = {
        "image": [{"bytes": f.read_bytes(), "path": None} for f in files],
        "label": [names.index(f.parent.name) for f in files],
    }
    HfDataset.from_dict(table, features=features).save_to_disk(str(folder))


# -- measuring ------------------------------------------------------------------------------


def epoch(batches: DataLoader[Any]) -> tuple[float, int]:
    """Seconds for one pass, and the images seen; each batch is touched as training would."""
    seen = 0
    checksum = 0
    start = time.perf_counter()
    for batch in batches:
        images, labels = (batch["image"], batch["label"]) if isinstance(batch, dict) else batch
        checksum += int(images[:, 0, 0, 0].sum()) + int(labels.sum())
        seen += len(labels)
    return time.perf_counter() - start, seen


def rate(
    make: Callable[[bool], Any], shuffled: bool, workers: int, args: argparse.Namespace
) -> float:
    """Images/s of the fastest of ``--epochs`` epochs after a warm-up epoch: on a shared machine
    the fastest is the one a neighbour disturbed least."""
    dataset = make(shuffled)
    iterable = isinstance(dataset, torch.utils.data.IterableDataset)
    # mreg's workers start from a forkserver (Lance is not fork-safe), the others are forked as
    # usual; persistent workers keep that start out of the timed epochs either way.
    mreg_data = isinstance(dataset, (LanceTorchDataset, LanceIterableDataset))
    batches = (loader if mreg_data else DataLoader)(
        dataset,
        batch_size=args.batch_size,
        shuffle=shuffled and not iterable,
        num_workers=workers,
        persistent_workers=workers > 0,
    )
    _, seen = epoch(batches)
    if seen != args.n:
        raise core.BenchError(f"one epoch gave {seen} images, not {args.n}")
    return args.n / min(epoch(batches)[0] for _ in range(args.epochs))


def contenders(repo: Path, arrow: Path, s3: bool) -> MAKE:
    from datasets import load_from_disk

    made: MAKE = {
        "mreg map, cache": lambda shuffled: LanceTorchDataset("images", repo=repo),
        "mreg map, in memory": lambda shuffled: LanceTorchDataset(
            "images", repo=repo, in_memory=True
        ),
        "mreg iterable, cache": lambda shuffled: LanceIterableDataset(
            "images", repo=repo, shuffle=shuffled
        ),
    }
    if s3:
        made["mreg map, S3"] = lambda shuffled: LanceTorchDataset("images", repo=repo, remote="s3")
        made["mreg iterable, S3"] = lambda shuffled: LanceIterableDataset(
            "images", repo=repo, remote="s3", shuffle=shuffled
        )
    made["PNG folder"] = lambda shuffled: PngFolder(repo / "images")
    made["HF arrow"] = lambda shuffled: load_from_disk(str(arrow)).with_format("torch")
    return made


def measure(made: MAKE, args: argparse.Namespace) -> dict[str, dict[int, dict[str, float]]]:
    """The median over ``--repeat`` rounds of every configuration's rate: whole rounds, so that
    a busy spell on the machine spreads over all contenders instead of hitting one."""
    rounds: list[dict[str, dict[int, dict[str, float]]]] = []
    for number in range(1, args.repeat + 1):
        found: dict[str, dict[int, dict[str, float]]] = {}
        for name, make in made.items():
            found[name] = {}
            for workers in args.workers:
                found[name][workers] = {}
                for order in ORDERS:
                    log(f"round {number}: {name}, {order}, {workers} worker(s)")
                    found[name][workers][order] = rate(make, order == "shuffled", workers, args)
        rounds.append(found)
    return {
        name: {
            workers: {
                order: statistics.median(r[name][workers][order] for r in rounds)
                for order in ORDERS
            }
            for workers in args.workers
        }
        for name in made
    }


# -- report ---------------------------------------------------------------------------------


def print_table(results: dict[str, dict[int, dict[str, float]]]) -> list[dict[str, Any]]:
    header = f"{'contender':<22}{'workers':>8}{'sequential':>12}{'shuffled':>12}{'shuf/seq':>10}"
    print()
    print(header)
    print("-" * len(header))
    rows = []
    for name, by_workers in results.items():
        for workers, rates in by_workers.items():
            share = rates["shuffled"] / rates["sequential"]
            print(
                f"{name:<22}{workers:>8}{rates['sequential']:>12,.0f}{rates['shuffled']:>12,.0f}"
                f"{share:>9.0%} "
            )
            rows.append({"contender": name, "workers": workers, **rates, "shuffled_share": share})
    print("\nimages/s delivered to the training loop (median round, fastest timed epoch)")
    return rows


def goals(results: dict[str, dict[int, dict[str, float]]]) -> list[dict[str, Any]]:
    lance = results["mreg map, cache"]
    found = []
    for workers, rates in lance.items():
        for other in ("PNG folder", "HF arrow"):
            theirs = results[other][workers]
            for order in ORDERS:
                found.append(
                    {
                        "goal": f"mreg (cache) >= {other}, {order}, {workers} worker(s)",
                        "met": rates[order] >= theirs[order],
                        "value": f"{rates[order] / theirs[order]:.2f}x",
                    }
                )
        share = rates["shuffled"] / rates["sequential"]
        found.append(
            {
                "goal": f"mreg (cache) shuffled >= {GOAL_RANDOM_SHARE:.0%} of sequential, "
                f"{workers} worker(s)",
                "met": share >= GOAL_RANDOM_SHARE,
                "value": f"{share:.0%}",
            }
        )
    print()
    for goal in found:
        print(f"{'MET' if goal['met'] else 'NOT MET':<8} {goal['goal']}: {goal['value']}")
    return found


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="PNG images in the folder")
    parser.add_argument("--batch-size", type=int, default=256, help="DataLoader batch size")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="num_workers")
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the table: median")
    parser.add_argument("--epochs", type=int, default=2, help="timed epochs; the fastest counts")
    parser.add_argument("--skip-s3", action="store_true", help="leave the S3 contender out")
    parser.add_argument(
        "--keep", action="store_true", help="keep the repo, folders and server data"
    )
    parser.add_argument("--work-dir", type=Path, default=ROOT / "bench" / ".work" / "torch")
    parser.add_argument(
        "--results", type=Path, default=ROOT / "bench" / ".work" / "torch-data-results.json"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    work: Path = args.work_dir.resolve()
    shutil.rmtree(work, ignore_errors=True)
    os.environ["MREG_NO_PROGRESS"] = "1"
    # Lance warns at every fork; only the other contenders' workers are forked, and they never
    # run Lance (mreg's start from a forkserver).
    warnings.filterwarnings("ignore", message="lance is not fork-safe")
    meter = core.CpuMeter()
    log(f"writing {args.n:,} PNG images in {IMAGE_CLASSES} classes, adding them to mreg")
    repo = make_repo(work, args.n)
    log("writing the Hugging Face arrow folder")
    make_arrow(repo / "images", work / "arrow")
    server = None if args.skip_s3 else core.start_server(work / "seaweed")
    try:
        if server is not None:
            log("pushing to SeaweedFS")
            push_to_s3(repo, server)
        results = measure(contenders(repo, work / "arrow", server is not None), args)
    finally:
        if server is not None:
            server.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nmreg {mreg.__version__}, torch {torch.__version__}, on {os.cpu_count()} cores")
    print(f"CPU used by other work on the machine meanwhile: {meter.other_share():.1%}")
    print(f"{args.n:,} PNG images of 32x32, batches of {args.batch_size}")
    rows = print_table(results)
    met = goals(results)
    path: Path = args.results.resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    config = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    path.write_text(json.dumps({"config": config, "table": rows, "goals": met}, indent=2) + "\n")
    print(f"\nresults written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
