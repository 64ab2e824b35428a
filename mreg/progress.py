"""Progress bars on stderr (rich), shown only when stderr is a terminal."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator

from mreg.terminal import SafeConsole, printable

stderr = SafeConsole(stderr=True)

Advance = Callable[[int], None]


def _enabled() -> bool:
    return stderr.is_terminal and not os.environ.get("MREG_NO_PROGRESS")


def _ignore(amount: int) -> None:
    pass


@contextlib.contextmanager
def bar(description: str, total: int, unit: str = "bytes") -> Iterator[Advance]:
    """A bar of ``total`` bytes (or items); yields a thread-safe ``advance(n)``."""
    if not _enabled():
        yield _ignore
        return
    # rich.progress loads only when a bar is drawn: not for --help, nor when piped.
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    columns = [TextColumn("{task.description}"), BarColumn()]
    if unit == "bytes":
        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns += [MofNCompleteColumn()]
    columns.append(TimeRemainingColumn())
    lock = threading.Lock()
    with Progress(*columns, console=stderr, transient=False) as progress:
        task = progress.add_task(printable(description), total=total)

        def advance(amount: int) -> None:
            with lock:
                progress.update(task, advance=amount)

        yield advance
