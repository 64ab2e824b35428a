"""The root ``mreg`` Typer app and its global options; each command module registers its commands
on it, and ``mreg.cli`` (which imports them all) runs it."""

from __future__ import annotations

import os
from typing import Annotated

import typer

app = typer.Typer(
    name="mreg",
    help="Version machine-learning models and datasets in git, with the bytes in Lance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Set by the global options, read where errors are rendered (mreg/cli/__init__.py).
global_options = {"verbose": False}


def _version(wanted: bool) -> None:
    if wanted:
        from mreg import __version__

        typer.echo(f"mreg {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
    server: Annotated[
        str | None,
        typer.Option(
            "--server",
            envvar="MREG_SERVER_URL",
            help="An `mreg serve` URL: registry reads and pull without a clone.",
        ),
    ] = None,
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    global_options["verbose"] = verbose
    if server:
        os.environ["MREG_SERVER_URL"] = server  # ModelRegistry() is then the server's client
