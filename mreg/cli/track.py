"""Commands that track artifacts: init, add, move, ls, show, status."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

import typer

from mreg.cli.options import (
    Json,
    Remote,
    human_size,
    open_data_manager,
    open_repo,
    print_json,
    shown,
    stdout,
)
from mreg.cli.root import app
from mreg.errors import UsageError
from mreg.progress import stderr

if TYPE_CHECKING:
    from mreg.repo.add import Mode
    from mreg.repo.usage import Footprint


@app.command()
def init() -> None:
    """Set up mreg in the current git work tree (harmless when done already)."""
    # Imported here, like everything a command runs: the CLI starts without it (see options).
    from mreg.repo import Repo

    repo = Repo.init(".")
    repo.install_git()
    stdout.print(
        f"mreg initialised in {repo.root} "
        "(commit .mreg/config.toml, .mreg/.gitignore and .gitattributes)"
    )


@app.command()
def add(
    path: Annotated[str, typer.Argument(help="File to track, or s3://BUCKET/PREFIX (Ray).")],
    target: Annotated[
        str | None,
        typer.Argument(help="s3:// only: where its manifest goes (default: the last segment)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Artifact name.")] = None,
    kind: Annotated[str | None, typer.Option(help="model or dataset (checked).")] = None,
    format: Annotated[str | None, typer.Option("--format", "-f", help="Force a format.")] = None,
    mode: Annotated[
        str, typer.Option(help="overwrite, or append rows to a dataset.")
    ] = "overwrite",
    meta: Annotated[list[str] | None, typer.Option(help="Metadata KEY=VALUE (repeatable).")] = None,
    skip_bad: Annotated[
        bool, typer.Option("--skip-bad", help="Skip unreadable records (images), and count them.")
    ] = False,
    engine: Annotated[
        str, typer.Option(help="local, or ray: convert a dataset on a Ray cluster.")
    ] = "local",
    address: Annotated[
        str | None, typer.Option(help="Ray cluster address (default: a local one).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Ray: shards converted at once (default: CPUs).")
    ] = None,
) -> None:
    """Convert PATH to Lance in the cache and write PATH.mreg.toml beside it."""
    # Kind, mode and name are checked once, by the library's AddOptions; only the engine, a
    # name here for an object made here, is the CLI's to check.
    if engine not in ("local", "ray"):
        raise UsageError(f"unknown engine '{engine}'", hint="use local or ray")
    if engine == "local" and (address is not None or workers is not None):
        raise UsageError("--address and --workers apply to --engine ray")
    if path.startswith("s3://"):
        _check_s3_source(path, engine, mode, kind, name)
    elif target is not None:
        raise UsageError(f"a second PATH ({target}) is where an s3:// source's manifest goes")
    runner = None
    if engine == "ray":
        from mreg.ray.ingest import RayEngine, import_ray

        import_ray()
        runner = RayEngine(address, workers)
    if path.startswith("s3://"):
        from mreg.ray.s3_source import add_prefix

        assert runner is not None
        result = add_prefix(
            open_repo(), runner, path, target, name, format, parse_meta(meta), skip_bad
        )
    else:
        result = open_repo().add(
            path,
            name=name,
            kind=kind,
            format=format,
            mode=cast("Mode", mode),
            meta=parse_meta(meta),
            skip_bad=skip_bad,
            engine=runner,
        )
    if result.skipped:
        stderr.print(
            f"skipped {len(result.skipped)} unreadable record(s): "
            + ", ".join(result.skipped[:10])
            + (" ..." if len(result.skipped) > 10 else "")
        )
    m = result.manifest
    if not result.changed:
        stdout.print(f"{shown(m.name)}: unchanged ({shown(result.manifest_path)})")
        return
    if result.opaque:
        stdout.print(
            f"{shown(m.name)}: tracked as opaque chunks ({m.source.format}): "
            f"{shown(result.opaque)}; {human_size(m.source.size)} in {len(m.chunks):,} chunks, "
            f"{human_size(result.new_bytes)} new data, "
            f"{human_size(m.data_size - result.new_bytes)} reused -> {result.manifest_path}"
        )
    else:
        size = f"{m.rows:,} rows" if m.kind == "dataset" else f"{m.parameters:,} parameters"
        stdout.print(
            f"{shown(m.name)}: {m.kind} from {m.source.format}, {size}, "
            f"{human_size(result.new_bytes)} new data, "
            f"{human_size(m.data_size - result.new_bytes)} reused -> {result.manifest_path}"
        )
    stdout.print(f"next: git add {result.manifest_path} && git commit", style="dim")


def _check_s3_source(url: str, engine: str, mode: str, kind: str | None, name: str | None) -> None:
    """An s3:// source is a dataset read by Ray tasks, each downloading its own shard."""
    from mreg.repo.add_options import check_kind_and_name

    # What AddOptions checks of a local add: an s3:// add makes none.
    check_kind_and_name(kind, name)
    if engine != "ray":
        raise UsageError(
            f"{url} is in object storage: it is read on a Ray cluster, whose tasks download it",
            hint=f"mreg add {url} --engine ray (or download it and add the folder)",
        )
    if mode != "overwrite" or kind == "model":
        raise UsageError("an s3:// source adds a new dataset version (--mode overwrite)")


def parse_meta(pairs: list[str] | None, stored: bool = True) -> dict[str, str]:
    """``--meta KEY=VALUE`` pairs. ``stored`` (add, import: the text goes into the manifest as
    it is): the fields the registry reads (``init_kwargs``, metrics, shapes...) must parse in
    that form, or no model version could be read back."""
    meta = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--meta expects KEY=VALUE, got '{pair}'")
        meta[key.strip()] = value
    if stored:
        from mreg.registry.metadata import check_meta

        check_meta(meta)
    return meta


@app.command()
def move(
    old: Annotated[str, typer.Argument(help="The artifact's file or folder (or its manifest).")],
    new: Annotated[str, typer.Argument(help="Its new path, or a folder to move it into.")],
) -> None:
    """Move an artifact and its manifest, fix .gitignore, and stage the move in git."""
    moved = open_repo().move(old, new)
    stdout.print(
        f"moved {shown(moved.name)}: {shown(moved.old)} -> {shown(moved.new)} "
        f"(staged {shown(', '.join(moved.staged))}; commit it)"
    )


@app.command("ls")
def ls(json: Json = False) -> None:
    """List the artifacts in the work tree."""
    targets = open_repo().ls()
    rows = [
        {
            "name": t.manifest.name,
            "kind": t.manifest.kind,
            "path": t.artifact_rel,
            "format": t.manifest.source.format,
            "rows": t.manifest.rows,
            "parameters": t.manifest.parameters,
            "data_size": t.manifest.data_size,
        }
        for t in targets
    ]
    if json:
        print_json(rows)
        return
    from rich.table import Table

    table = Table("name", "kind", "format", "path", "rows", "size")
    for row in rows:
        table.add_row(
            shown(row["name"]),
            shown(row["kind"]),
            shown(row["format"]),
            shown(row["path"]),
            f"{row['rows']:,}",
            human_size(int(row["data_size"])),  # type: ignore[call-overload]
        )
    stdout.print(table)


@app.command()
def du(remote: Remote = None, json: Json = False) -> None:
    """Per artifact: logical size of its kept versions, bytes stored, and the dedup ratio;
    with --remote, what that remote stores."""
    usage = open_repo().du(remote)
    rows = [*usage.artifacts, usage.total]
    if json:
        print_json(
            {
                "artifacts": [_footprint(f) for f in usage.artifacts],
                "total": _footprint(usage.total),
                "remote": None
                if usage.remote is None
                else {**_footprint(usage.remote), "objects": usage.remote_objects},
            }
        )
        return
    from rich.table import Table

    table = Table("name", "versions", "logical", "stored", "dedup")
    if usage.remote is not None:
        rows.append(usage.remote)
    for row in rows:
        table.add_row(
            shown(row.name),
            f"{row.versions:,}",
            human_size(row.logical),
            human_size(row.stored),
            f"{row.ratio:.2f}x",
        )
    stdout.print(table)


def _footprint(footprint: Footprint) -> dict[str, object]:
    return {
        "name": footprint.name,
        "versions": footprint.versions,
        "logical_bytes": footprint.logical,
        "stored_bytes": footprint.stored,
        "dedup_ratio": round(footprint.ratio, 4),
    }


@app.command()
def show(
    spec: Annotated[
        str,
        typer.Argument(metavar="NAME[@REV|#STAGE]", help="Artifact to describe."),
    ],
    json: Json = False,
) -> None:
    """Describe one artifact (at a version, a revision, or a registry stage's version)."""
    # Only a stage needs the registry (opening it may set it up); the rest is the work tree's.
    target = open_data_manager().show(spec) if "#" in spec else open_repo().show(spec)
    m = target.manifest
    if json:
        print_json({"manifest_path": target.manifest_rel, "rev": target.rev, **vars(m)})
        return
    stdout.print(
        f"[bold]{shown(m.name)}[/bold] ({m.kind}) {shown(target.artifact_rel)}"
        + (f" at {shown(target.rev)}" if target.rev else "")
    )
    stdout.print(
        f"source: {shown(m.source.format)}, {human_size(m.source.size)}, "
        f"sha256 {shown(m.source.sha256)}, restore {m.source.restore}"
    )
    stdout.print(
        f"lance: {len(m.fragments)} fragment(s), {len(m.files)} file(s), "
        f"{human_size(m.data_size)}, {m.rows:,} rows"
    )
    if m.chunks:
        stdout.print(f"opaque bytes: {len(m.chunks):,} content-defined chunks")
    elif m.kind == "model":
        stdout.print(
            f"model: {len(m.weights)} tensors, {len(m.side_files)} side files, "
            f"{m.parameters:,} parameters, "
            f"dtypes {', '.join(m.dtypes)}"
        )
    else:
        stdout.print("columns: " + ", ".join(f"{shown(c.name)}:{shown(c.type)}" for c in m.columns))
    for key, value in m.info.items():
        stdout.print(f"info {shown(key)} = {shown(value)}")
    for key, value in m.meta.items():
        stdout.print(f"meta {shown(key)} = {shown(value)}")


@app.command()
def status(remote: Remote = None, json: Json = False) -> None:
    """Per artifact: in sync, changed in workspace, missing from cache, not pushed."""
    results = open_repo().status(remote)
    if json:
        print_json(results)
        return
    if not results:
        stdout.print("no artifacts yet (see `mreg add`)")
    for result in results:
        style = "green" if result.in_sync else "yellow"
        label = shown(result.tag or result.name)
        stdout.print(
            f"{label} ({shown(result.path)}): [{style}]{', '.join(result.states)}[/{style}]"
        )
