"""Commands about versions: tag, log, diff."""

from __future__ import annotations

from typing import Annotated

import typer

from mreg.cli.options import Json, human_size, open_repo, print_json, shown, stdout
from mreg.cli.root import app
from mreg.errors import UsageError
from mreg.terminal import printable


@app.command()
def tag(
    name: Annotated[str, typer.Argument(help="Artifact name.")],
    version: Annotated[str, typer.Argument(help="vMAJOR.MINOR.PATCH")],
    message: Annotated[str | None, typer.Option("--message", "-m")] = None,
) -> None:
    """Create the annotated git tag NAME@VERSION on the current commit."""
    tag_name = open_repo().tag(name, version, message)
    stdout.print(f"tagged {tag_name} (share it with `git push --tags`)")


@app.command()
def log(name: Annotated[str, typer.Argument(help="Artifact name.")], json: Json = False) -> None:
    """List an artifact's versions: tags and commits that changed its manifest."""
    entries = open_repo().log(name)
    if json:
        print_json(entries)
        return
    for e in entries:
        size = f"{e.rows:,} rows" if e.parameters == 0 else f"{e.parameters:,} parameters"
        tags = f" ({shown(', '.join(e.tags))})" if e.tags else ""
        stdout.print(
            f"[yellow]{e.commit[:10]}[/yellow]{tags} {e.date[:10]}  {size}, "
            f"{human_size(e.data_size)}  {shown(e.subject)}"
        )


@app.command()
def diff(
    rev_a: Annotated[str | None, typer.Argument(help="Old revision (default HEAD).")] = None,
    rev_b: Annotated[str | None, typer.Argument(help="New revision (default work tree).")] = None,
    json: Json = False,
    format: Annotated[
        str, typer.Option("--format", help="text, json, or markdown (a pull-request comment).")
    ] = "text",
) -> None:
    """What changed in models and datasets between two revisions (from git alone)."""
    if format not in ("text", "json", "markdown"):
        raise UsageError(f"unknown format '{format}'", hint="use text, json or markdown")
    result = open_repo().diff(rev_a, rev_b)
    if json or format == "json":
        print_json(result)
        return
    if format == "markdown":
        from mreg.repo.markdown import render

        typer.echo(render(result), nl=False)
        return
    if not result.changes:
        stdout.print(f"no changes between {result.old} and {result.new}")
    for change in result.changes:
        stdout.print(f"[bold]{change.change} {change.kind} {shown(change.name)}[/bold]")
        for line in change.details:
            stdout.print(f"  {printable(line)}", markup=False)
