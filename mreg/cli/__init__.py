"""The ``mreg`` command. Commands parse, call one API function, and print; errors are rendered
once, here: one line on stderr and a non-zero exit (a traceback only with ``--verbose``)."""

from __future__ import annotations

import atexit
import os
import sys
import threading
import traceback
from typing import NoReturn

from mreg.cli.root import app, global_options
from mreg.errors import MregError, local_fault
from mreg.progress import stderr

INTERRUPTED = 130
INTERRUPTED_MESSAGE = "interrupted: nothing half-written was kept; run the command again to finish"


def main(argv: list[str] | None = None) -> None:
    """Entry point of the console script."""
    try:
        app(args=argv, prog_name="mreg")
    except MregError as error:
        _fail(error)
    except OSError as error:
        # A full, read-only or failing disk that no layer below named: still one line.
        fault = local_fault(error)
        if fault is None:
            raise
        _fail(fault)
    except SystemExit as exit_:
        # Typer turns Ctrl-C into a silent exit 130; say what state that leaves.
        if exit_.code == INTERRUPTED:
            stderr.print(INTERRUPTED_MESSAGE)
        raise
    except KeyboardInterrupt:
        stderr.print(INTERRUPTED_MESSAGE)
        sys.exit(INTERRUPTED)


def _fail(error: MregError) -> NoReturn:
    if global_options["verbose"]:
        traceback.print_exc()
    # One line, whatever a wrapped library put in the message.
    message = "error: " + " ".join(str(error).split())  # the hint included
    stderr.print(message, markup=False, highlight=False, soft_wrap=True)
    sys.exit(error.exit_code)


def script() -> NoReturn:
    """The console script: ``main``, then an exit that skips the interpreter's teardown.

    Tearing down frees every module and object one at a time: 0.1 s of every command once
    boto3, typer and pydantic are loaded (a third of a command with nothing to do). By then
    the work is done: files are written atomically and closed. So the exit does what a normal
    one does that matters (waits for worker threads, runs atexit handlers, flushes stdout and
    stderr) and skips only the freeing. ``main`` itself exits normally: tests call it in-process.
    """
    try:
        main()
        code = 0
    except SystemExit as exit_:
        code = _exit_status(exit_.code)
    _leave(code)


def _exit_status(code: object) -> int:
    """What the interpreter makes of ``SystemExit(code)``: None is 0, a message is printed, 1."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _leave(code: int) -> NoReturn:
    shutdown = getattr(threading, "_shutdown", None)  # what Py_Finalize calls first
    if shutdown is None:  # a Python without it: exit the slow, ordinary way
        sys.exit(code)
    shutdown()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            code = code or 120  # as the interpreter does when it cannot flush stdout
    os._exit(code)


from mreg.cli import track, importing, share, history, review, remote, setup, registry, serve, demo  # noqa: E402, I001  (the order of --help)

__all__ = [
    "app", "demo", "history", "importing", "main", "registry", "remote", "review", "script",
    "serve", "setup", "share", "track",
]  # fmt: skip
