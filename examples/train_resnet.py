"""Train ResNet18 on versioned data with mreg: the same run as `mreg demo train`, from Python.

    python examples/train_resnet.py --offline --steps 30      # in a git work tree

It downloads (or takes from the cache) the model and the data set, converts both to Lance with
mreg, pushes them, trains on rows read from the Lance data, evaluates, and registers the trained
model with its metrics and the dataset version it was trained on. The options are those of
`mreg demo train` (see `--help`); this script builds `mreg.demo.TrainOptions` and calls
`mreg.demo.train`, the function the command calls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mreg.demo import TrainOptions, train
from mreg.demo.options import DATASET_MODES, DEFAULT_MODEL_URL, DEFAULT_PREFIX, MODEL_MODES
from mreg.errors import MregError


def parse(argv: list[str]) -> TrainOptions:
    """The command line as TrainOptions (both --model_mode and --model-mode spellings)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add(
        "--model",
        help=f"URL, artifact NAME[@REV], or Transformers folder / Hub id "
        f"(default {DEFAULT_MODEL_URL}; offline: a fresh ResNet18)",
    )
    add("--model_mode", "--model-mode", default="url", help="|".join(MODEL_MODES))
    add("--dataset", help="a Hugging Face dataset, or digits (default cifar10; offline: digits)")
    add("--dataset_mode", "--dataset-mode", default="repo", help="|".join(DATASET_MODES))
    add("--split", default="train", help="split to train on")
    add("--eval_split", "--eval-split", default="test", help="held-out split to evaluate on")
    add("--limit", type=int, help="use at most N rows of each split")
    add("--batch", type=int, default=64, help="batch size")
    add("--epochs", type=int, default=1, help="passes over the training rows")
    add("--steps", type=int, help="exactly N optimizer steps (overrides --epochs)")
    add("--lr", type=float, default=1e-3, help="Adam learning rate")
    add("--name", help="registered model name (default DATASET-resnet18)")
    add("--s3-endpoint", help="S3 endpoint URL")
    add("--aws-access-key", help="kept in .mreg/config.local.toml only")
    add("--aws-secret-key", help="kept in .mreg/config.local.toml only")
    add("--aws-region", help="S3 region")
    add("--bucket", help="S3 bucket (pushes go there when given)")
    add("--prefix", default=DEFAULT_PREFIX, help="S3 key prefix")
    add("--cache", type=Path, help="download cache (default ~/.cache/mreg/demo)")
    add("--offline", action="store_true", help="no network: digits and a fresh ResNet18")
    return TrainOptions(**vars(parser.parse_args(argv)))


def main(argv: list[str]) -> int:
    try:
        report = train(parse(argv), log=lambda line: print(f"== {line}", file=sys.stderr))
    except MregError as error:
        hint = f" (hint: {error.hint})" if error.hint else ""
        print(f"error: {' '.join(str(error).split())}{hint}", file=sys.stderr)
        return 1
    fit = report.fit
    print(
        f"registered {report.registered}: accuracy {report.before.accuracy:.1%} -> "
        f"{report.after.accuracy:.1%} on {report.eval_dataset}, trained on "
        f"{report.train_dataset} ({fit.steps} steps, {fit.samples_per_second:,.0f} samples/s); "
        f"pushed to {report.remote}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
