"""The ``mreg`` command. Commands parse, call one API function, and print; errors are rendered
once, here: one line on stderr and a non-zero exit (a traceback only with ``--verbose``)."""

from __future__ import annotations

import sys
import traceback
from typing import Annotated

import typer

from mreg.errors import MregError
from mreg.progress import stderr

app = typer.Typer(
    name="mreg",
    help="Version machine-learning models and datasets in git, with the bytes in Lance.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
_options = {"verbose": False}
INTERRUPTED = 130
INTERRUPTED_MESSAGE = "interrupted: nothing half-written was kept; run the command again to finish"


@app.callback()
def _global(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks.")] = False,
) -> None:
    _options["verbose"] = verbose


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        app(args=argv, prog_name="mreg")
    except MregError as error:
        if _options["verbose"]:
            traceback.print_exc()
        # One line, whatever a wrapped library put in the message.
        message = "error: " + " ".join(str(error).split())
        if error.hint:
            message += f" (hint: {error.hint})"
        stderr.print(message, markup=False, highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except SystemExit as exit_:
        # Typer turns Ctrl-C into a silent exit 130; say what state that leaves.
        if exit_.code == INTERRUPTED:
            stderr.print(INTERRUPTED_MESSAGE)
        raise
    except KeyboardInterrupt:
        stderr.print(INTERRUPTED_MESSAGE)
        sys.exit(INTERRUPTED)


from mreg.cli import track, importing, share, history, remote, registry, demo  # noqa: E402, I001  (the order of --help)

__all__ = ["app", "demo", "history", "importing", "main", "registry", "remote", "share", "track"]
