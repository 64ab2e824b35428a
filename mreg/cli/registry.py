"""Commands of the model registry: register, models, search, stage, unstage, deprecate, remove,
export, validate, stats. Register, search, the stage verbs and remove take datasets too (through
``DataManager``); the others are the models'.

The registry (and rich's tables) load inside the commands, so that starting the CLI for any other
command does not pay for them."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mreg.cli.options import (
    Json,
    human_size,
    open_data_manager,
    open_registry,
    print_json,
    shown,
    stdout,
)
from mreg.cli.root import app
from mreg.cli.track import parse_meta
from mreg.errors import UsageError, VerificationFailed

Name = Annotated[str, typer.Argument(help="Model or dataset name.")]
# register_model's own parameters, which --meta cannot set.
_ARGUMENTS = {"name", "model", "model_format", "model_type", "version", "tokenizer"}


@app.command()
def register(
    path: Annotated[str, typer.Argument(help="Weights file, model folder, or a dataset.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Model or dataset name.")],
    version: Annotated[
        str | None, typer.Option("--version", help="X.Y.Z (default: next patch).")
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(help="model or dataset (default: the name's kind, else what PATH is)."),
    ] = None,
    type_: Annotated[
        str | None, typer.Option("--type", "-t", help="classification, regression, ...")
    ] = None,
    format: Annotated[str | None, typer.Option("--format", "-f", help="Model format.")] = None,
    metric: Annotated[
        list[str] | None, typer.Option("--metric", help="Metric NAME=NUMBER (repeatable).")
    ] = None,
    meta: Annotated[list[str] | None, typer.Option(help="Metadata KEY=VALUE (repeatable).")] = None,
) -> None:
    """Register PATH as a new version of model or dataset NAME: commit it, tag NAME@vX.Y.Z."""
    # The registry turns these into their stored form (tags=a,b into a JSON list...).
    given = parse_meta(meta, stored=False)
    taken = sorted(given.keys() & _ARGUMENTS)
    if taken:
        raise UsageError(
            f"--meta {taken[0]}=... is not metadata", hint="see `mreg register --help`"
        )
    from mreg.registry.entries import DatasetEntry

    fields: dict[str, Any] = {**given, "performance_metrics": _metrics(metric)}
    entry = open_data_manager().register(
        name, Path(path), version, kind=kind, model_format=format, model_type=type_, **fields
    )
    if isinstance(entry, DatasetEntry):
        size = f"{entry.rows:,} rows"
    else:
        size = f"{entry.metadata.parameters_count:,} parameters"
    stdout.print(
        f"registered {shown(entry.tag)} ({size}, commit {entry.commit[:10]}; "
        "share it with `git push --follow-tags` and `mreg push`)"
    )


@app.command()
def models(json: Json = False) -> None:
    """List registered models: latest version, stages, metrics."""
    summaries = open_registry().models()
    if json:
        print_json(summaries)
        return
    from rich.table import Table

    table = Table("name", "latest", "versions", "stages", "metrics", box=None)
    for s in summaries:
        stages = ", ".join(f"{stage}={v}" for stage, v in s.stages.items())
        metrics = ", ".join(f"{k}={v:g}" for k, v in s.metrics.items())
        name = s.name + (" (deprecated)" if s.deprecated else "")
        table.add_row(
            shown(name), shown(s.latest or ""), str(len(s.versions)), shown(stages), shown(metrics)
        )
    stdout.print(table)


@app.command()
def search(
    query: Annotated[
        list[str] | None,
        typer.Argument(
            help="Terms, all must match: resnet* kind:dataset rows>1000 tag:cv accuracy>=0.9"
        ),
    ] = None,
    latest: Annotated[
        bool, typer.Option("--latest", help="Only each name's newest matching version.")
    ] = False,
    json: Json = False,
) -> None:
    """Find registered versions of models and datasets by name, kind, type, format, tags,
    stage, rows, columns, metadata and metrics."""
    from mreg.registry.entries import DatasetEntry

    entries = open_data_manager().search(" ".join(query or []), latest=latest)
    if json:
        print_json(entries)
        return
    from rich.table import Table

    table = Table("name", "version", "kind", "type", "format", "stages", "details", box=None)
    for e in entries:
        if isinstance(e, DatasetEntry):
            kind, type_, format_ = "dataset", "", e.format
            details = f"{e.rows:,} rows; columns " + ", ".join(e.columns)
        else:
            kind, type_, format_ = "model", e.model_type.value, e.model_format.value
            metrics = e.metadata.performance_metrics.items()
            details = ", ".join(f"{k}={v:g}" for k, v in metrics)
        table.add_row(
            shown(e.name),
            shown(e.version),
            kind,
            type_,
            shown(format_),
            shown(", ".join(e.stages)),
            shown(details),
        )
    stdout.print(table)


@app.command()
def stage(
    name: Name,
    version: Annotated[str, typer.Argument(help="X.Y.Z or vX.Y.Z")],
    stage: Annotated[str, typer.Argument(help="Stage, for example prod.")],
) -> None:
    """Put a version in a stage (tag NAME#STAGE#N)."""
    tag = open_data_manager().stage(name, version, stage)
    stdout.print(f"tagged {tag} (share it with `git push --tags`)")


@app.command()
def unstage(name: Name, stage: Annotated[str, typer.Argument(help="Stage.")]) -> None:
    """Take the version now in a stage out of it (tag NAME#STAGE!#N)."""
    tag = open_data_manager().unstage(name, stage)
    stdout.print(f"tagged {tag} (share it with `git push --tags`)")


@app.command()
def deprecate(name: Name) -> None:
    """Mark a model or dataset deprecated (tag NAME@deprecated)."""
    tag = open_data_manager().deprecate(name)
    stdout.print(f"tagged {tag} (share it with `git push --tags`)")


@app.command()
def remove(
    spec: Annotated[str, typer.Argument(help="NAME (every version) or NAME@VERSION.")],
) -> None:
    """Deregister a version, or every version (tags NAME@vX.Y.Z!); data stay until gc."""
    name, _, version = spec.partition("@")
    tags = open_data_manager().delete(name, version or None)
    stdout.print(f"tagged {', '.join(tags)} (share with `git push --tags`)")


@app.command()
def export(
    spec: Annotated[str, typer.Argument(help="NAME, NAME@VERSION or NAME#STAGE.")],
    format: Annotated[str, typer.Option("--format", "-f", help="safetensors, pth or onnx.")],
    output: Annotated[str, typer.Option("--output", "-o", help="File to write.")],
    dynamic_axis: Annotated[
        list[str] | None,
        typer.Option(
            "--dynamic-axis",
            metavar="INPUT:AXIS[=NAME]",
            help="ONNX: make this axis dynamic too (the batch axis always is).",
        ),
    ] = None,
) -> None:
    """Export a registered version to safetensors, .pth or ONNX (any batch size)."""
    from mreg.registry.onnx_export import parse_dynamic_axes
    from mreg.registry.resolution import split_spec

    name, version = split_spec(spec)
    axes = parse_dynamic_axes(dynamic_axis or [])
    path = open_data_manager().export_model(name, version, output, format, dynamic_axes=axes)
    stdout.print(f"exported {shown(spec)} to {shown(str(path))}")


@app.command()
def validate(
    json: Json = False,
    no_load: Annotated[
        bool, typer.Option("--no-load", help="Check files and sha256 only, skip loading.")
    ] = False,
) -> None:
    """Check every registered version: files in the cache, sha256, loadable."""
    report = open_registry().validate_registry(load=not no_load)
    if json:
        print_json({**_fields(report), "ok": report.ok})
    else:
        for e in report.errors:
            stdout.print(f"{shown(e.name)}@{shown(e.version)}: {shown(e.problem)}")
        stdout.print(
            f"{report.valid_versions}/{report.versions} versions of {report.models} models valid, "
            f"{report.files} files, {human_size(report.bytes_checked)} checked"
        )
    if not report.ok:
        raise VerificationFailed(f"{len(report.errors)} problem(s) in the registry")


@app.command()
def stats(json: Json = False) -> None:
    """Counts of models, versions, stages and data size, by format and type."""
    found = open_registry().stats()
    if json:
        print_json(found)
        return
    from rich.table import Table

    table = Table("", "", box=None)
    table.add_row("models", f"{found.models} ({found.deprecated_models} deprecated)")
    table.add_row("versions", f"{found.versions} ({found.removed_versions} removed)")
    table.add_row("staged versions", str(found.staged_versions))
    table.add_row("stages", _counts(found.stages))
    table.add_row("data size", human_size(found.data_size))
    table.add_row("parameters", f"{found.parameters:,}")
    table.add_row("by format", _counts(found.by_format))
    table.add_row("by type", _counts(found.by_type))
    stdout.print(table)


def _counts(counts: dict[str, int]) -> str:
    return shown(", ".join(f"{k}={v}" for k, v in counts.items()) or "-")


def _fields(value: Any) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(value)


def _metrics(pairs: list[str] | None) -> dict[str, float]:
    metrics = {}
    for key, value in parse_meta(pairs, stored=False).items():
        try:
            metrics[key] = float(value)
        except ValueError:
            raise UsageError(f"--metric expects NAME=NUMBER, got '{key}={value}'") from None
    return metrics
