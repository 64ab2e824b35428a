"""Registry search benchmark: 1,000 versions across 100 models searched in under a second.

    python bench/search.py [--models 100] [--versions 10] [--keep]

Builds a registry in ``bench/.work/search`` (reused when it already has the same shape): the first
version of every model through ``ModelRegistry.register_model`` (a real safetensors file, real
manifest), the later versions the way a script would after ``mreg add``: new weights, the
manifest's ``[meta]`` with metrics, one commit per round, and an annotated ``NAME@vX.Y.Z`` tag per
version. Every tenth model has a version in ``prod``. Then it times each query cold (no
``.mreg/cache/registry-index.json``) and warm, in-process, through ``ModelRegistry`` and (warm)
through ``DataManager``, which searches datasets too, and ``mreg search`` as a command.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

from mreg import DataManager, ModelRegistry
from mreg.registry import metadata as fields
from mreg.repo.index import INDEX_FILE

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "bench" / ".work" / "search"
FAMILIES = ("resnet", "bert", "vit", "gpt", "unet")
TYPES = {"resnet": "classification", "vit": "vision", "bert": "embedding", "gpt": "language_model"}
GOAL_SECONDS = 1.0
MREG = shutil.which("mreg") or "mreg"
QUERIES = [
    ("resnet*", False),
    ("type:classification", False),
    ("accuracy>=0.9", False),
    ("tag:cv stage:prod", False),
    ("format:safetensors accuracy>=0.8 loss<0.2 author:team-*", False),
    ("resnet* accuracy>=0.5", True),
]


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def model_name(i: int) -> str:
    return f"{FAMILIES[i % len(FAMILIES)]}-{i:03d}"


def metadata(rng: random.Random, name: str, version: int) -> dict[str, object]:
    family = name.split("-")[0]
    accuracy = round(min(0.99, 0.5 + 0.05 * version + rng.random() * 0.1), 4)
    return {
        "author": f"team-{family}",
        "description": f"{name} round {version}",
        "tags": ["cv" if family in ("resnet", "vit", "unet") else "nlp", family],
        "performance_metrics": {"accuracy": accuracy, "loss": round(1 - accuracy, 4)},
        "training_epochs": 10 * (version + 1),
    }


def weights(path: Path, seed: int) -> Path:
    values = np.random.default_rng(seed).standard_normal((8, 8)).astype(np.float32)
    save_file({"w": values, "b": values[0]}, str(path))
    return path


def build(root: Path, models: int, versions: int) -> None:
    """A registry of ``models`` x ``versions`` versions at ``root`` (a fresh git work tree)."""
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "bench@example.com")
    git(root, "config", "user.name", "bench")
    subprocess.run([MREG, "init"], cwd=root, check=True, capture_output=True)
    os.chdir(root)
    registry = ModelRegistry()
    rng = random.Random(0)
    scratch = root.parent / "weights.safetensors"
    names = [model_name(i) for i in range(models)]
    for i, name in enumerate(names):
        family = name.split("-")[0]
        registry.register_model(
            name,
            weights(scratch, i),
            "safetensors",
            TYPES.get(family, "custom"),
            **metadata(rng, name, 0),  # type: ignore[arg-type]
        )
    for round_ in range(1, versions):
        for i, name in enumerate(names):
            family = name.split("-")[0]
            path = weights(root / "models" / name / "model.safetensors", 1000 * round_ + i)
            meta = fields.to_meta(metadata(rng, name, round_))
            meta[fields.FORMAT_KEY] = "safetensors"
            meta[fields.TYPE_KEY] = TYPES.get(family, "custom")
            registry.repo.add(path, name=name, kind="model", meta=meta, replace_meta=True)
        git(root, "add", "-A", "models")
        git(root, "commit", "-q", "-m", f"round {round_}")
        for name in names:
            version = f"v0.1.{round_}"
            git(root, "tag", "-a", f"{name}@{version}", "-m", f"Registering {name} {version}")
    for name in names[::10]:
        registry.stage(name, f"v0.1.{versions // 2}", "prod")


def time_query(
    root: Path, query: str, latest: bool, cold: bool, both_kinds: bool = False
) -> tuple[float, int]:
    if cold:
        (root / ".mreg" / "cache" / INDEX_FILE).unlink(missing_ok=True)
    start = time.perf_counter()
    registry = DataManager(root) if both_kinds else ModelRegistry(root)
    found = registry.search(query, latest=latest)
    return time.perf_counter() - start, len(found)


def time_command(root: Path, query: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [MREG, "search", *query.split(), "--json"],
        cwd=root,
        check=True,
        capture_output=True,
    )
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--keep", action="store_true", help="keep bench/.work/search")
    args = parser.parse_args()
    root = WORK / f"{args.models}x{args.versions}"
    if not (root / ".mreg").is_dir():
        start = time.perf_counter()
        build(root, args.models, args.versions)
        print(f"built {args.models} models x {args.versions} versions in "
              f"{time.perf_counter() - start:.1f} s")  # fmt: skip
    os.chdir(root)
    total = len(ModelRegistry(root).search(""))
    print(f"{total} versions in {root}\n")
    print(f"{'query':<58} {'found':>6} {'cold s':>8} {'warm s':>8} {'manager s':>9}")
    worst = 0.0
    for query, latest in QUERIES:
        cold, found = time_query(root, query, latest, cold=True)
        warm = min(time_query(root, query, latest, cold=False)[0] for _ in range(3))
        both = min(time_query(root, query, latest, False, both_kinds=True)[0] for _ in range(3))
        worst = max(worst, cold, warm, both)
        label = query + (" (latest)" if latest else "")
        print(f"{label:<58} {found:>6} {cold:>8.3f} {warm:>8.3f} {both:>9.3f}")
    command = time_command(root, QUERIES[2][0])
    print(f"\n`mreg search {QUERIES[2][0]} --json` as a command (Python start included): "
          f"{command:.2f} s")  # fmt: skip
    verdict = "met" if worst < GOAL_SECONDS else "NOT met"
    print(f"goal: every search of {total} versions under {GOAL_SECONDS:.0f} s: {verdict} "
          f"(slowest {worst:.3f} s)")  # fmt: skip
    if not args.keep:
        shutil.rmtree(WORK, ignore_errors=True)


if __name__ == "__main__":
    main()
