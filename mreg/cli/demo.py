"""``mreg demo train``: the ResNet18 lifecycle on versioned data, end to end."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mreg.cli.options import human_size, stdout
from mreg.cli.root import app
from mreg.demo.options import DEFAULT_BATCH, DEFAULT_LIMIT, DEFAULT_MODEL_URL, DEFAULT_PREFIX
from mreg.progress import stderr

if TYPE_CHECKING:
    from mreg.demo import TrainReport

demo_app = typer.Typer(help="Run mreg end to end on real data.", no_args_is_help=True)
app.add_typer(demo_app, name="demo")


@demo_app.command("train")
def train(
    model: Annotated[
        str | None,
        typer.Option(
            help=f"URL, mreg artifact NAME\\[@REV], or Transformers folder / Hub id. "
            f"Default: {DEFAULT_MODEL_URL} (offline: a fresh ResNet18)."
        ),
    ] = None,
    model_mode: Annotated[
        str, typer.Option("--model_mode", "--model-mode", help="url | repo | transformers.")
    ] = "url",
    dataset: Annotated[
        str | None,
        typer.Option(
            help="A Hugging Face dataset, or digits (scikit-learn's, offline). "
            "Default: cifar10 (offline: digits)."
        ),
    ] = None,
    dataset_mode: Annotated[
        str,
        typer.Option(
            "--dataset_mode",
            "--dataset-mode",
            help="repo (read the Lance artifact) | arrow (read the datasets arrow folder). "
            "Default repo, not the seed's arrow: the demo shows training from Lance.",
        ),
    ] = "repo",
    split: Annotated[str, typer.Option(help="Split to train on.")] = "train",
    eval_split: Annotated[
        str, typer.Option("--eval_split", "--eval-split", help="Held-out split to evaluate on.")
    ] = "test",
    limit: Annotated[
        int | None, typer.Option(help="Use at most N rows of each split.")
    ] = DEFAULT_LIMIT,
    batch: Annotated[int, typer.Option(help="Batch size.")] = DEFAULT_BATCH,
    epochs: Annotated[int, typer.Option(help="Epochs: of --steps steps each, or a pass.")] = 1,
    steps: Annotated[
        int | None,
        typer.Option(help="Optimizer steps per epoch (data repeat as needed). Default: a pass."),
    ] = None,
    lr: Annotated[float, typer.Option(help="Adam learning rate.")] = 1e-3,
    name: Annotated[
        str | None, typer.Option(help="Registered model name. Default: DATASET-resnet18.")
    ] = None,
    s3_endpoint: Annotated[
        str | None,
        typer.Option(
            help="S3 endpoint URL (MinIO, SeaweedFS). No default (the seed's localhost:9000): "
            "a run pushes to S3 only when asked."
        ),
    ] = None,
    aws_access_key: Annotated[
        str | None,
        typer.Option(
            help="S3 access key (kept in .mreg/config.local.toml only). "
            "Default with --s3-endpoint: minioadmin."
        ),
    ] = None,
    aws_secret_key: Annotated[
        str | None,
        typer.Option(
            help="S3 secret key (kept in .mreg/config.local.toml only). "
            "Default with --s3-endpoint: minioadmin123."
        ),
    ] = None,
    aws_region: Annotated[str | None, typer.Option(help="S3 region.")] = None,
    bucket: Annotated[
        str | None,
        typer.Option(
            help="Push to s3://BUCKET/PREFIX (remote demo-s3). No default (the seed's "
            "my-bucket): without it the repository's default remote is used."
        ),
    ] = None,
    prefix: Annotated[str, typer.Option(help="Key prefix in --bucket.")] = DEFAULT_PREFIX,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="Downloads (and a local remote, if one is made). Default: ~/.cache/mreg/demo, "
            "not the seed's ./_cache, which `git add -A` would commit."
        ),
    ] = None,
    offline: Annotated[
        bool,
        typer.Option("--offline", help="No network: scikit-learn's digits and a fresh ResNet18."),
    ] = False,
) -> None:
    """Download a model and a data set, convert both to Lance, push them, train ResNet18 on
    the Lance rows, evaluate, and register the trained model with its metrics and lineage."""
    # The pipeline (registry, repository, converters) loads only when the demo runs.
    from mreg.demo import TrainOptions
    from mreg.demo import train as run_demo

    options = TrainOptions(
        model=model,
        model_mode=model_mode,
        dataset=dataset,
        dataset_mode=dataset_mode,
        split=split,
        eval_split=eval_split,
        limit=limit,
        batch=batch,
        epochs=epochs,
        steps=steps,
        lr=lr,
        name=name,
        s3_endpoint=s3_endpoint,
        aws_access_key=aws_access_key,
        aws_secret_key=aws_secret_key,
        aws_region=aws_region,
        bucket=bucket,
        prefix=prefix,
        cache=cache,
        offline=offline,
    )
    report = run_demo(options, log=lambda line: stderr.print(f"[bold]==[/] {line}"))
    print_report(report)


def print_report(report: TrainReport) -> None:
    """Where everything went, then the summary table (stdout)."""
    stdout.print(f"repository   {report.repo}")
    stdout.print(f"mreg cache   {report.cache}")
    stdout.print(f"downloads    {report.download_cache}")
    stdout.print(f"remote       {report.remote}")
    stdout.print(f"model from   {report.model_source}")
    stdout.print(f"manifests    {', '.join(report.manifests)}")
    stdout.print(f"registered   {report.registered} ({report.registered_manifest})")
    from rich.table import Table

    table = Table(title="mreg demo train" + (" (offline)" if report.offline else ""))
    for column in ("what", "value"):
        table.add_column(column)
    fit = report.fit
    rows = [
        ("trained on", report.train_dataset),
        ("evaluated on", f"{report.eval_dataset} ({report.after.rows:,} rows)"),
        ("steps / epochs", f"{fit.steps} / {fit.epochs}"),
        ("training time", f"{fit.seconds:.1f} s"),
        ("samples/s", f"{fit.samples_per_second:,.0f}"),
        ("accuracy before", f"{report.before.accuracy:.1%}"),
        ("accuracy after", f"{report.after.accuracy:.1%} (loss {report.after.loss:.3f})"),
        ("pushed", f"{report.pushed_files} files, {human_size(report.pushed_bytes)}"),
        ("registered version", report.registered),
    ]
    for row in rows:
        table.add_row(*row)
    stdout.print(table)
