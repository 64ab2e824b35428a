"""The one transfer engine: many files in parallel, one progress bar, first error wins."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

from mreg.progress import Advance, bar

T = TypeVar("T")


def run_parallel(
    items: Sequence[T],
    work: Callable[[T, Advance], None],
    description: str,
    total_bytes: int,
    jobs: int,
    keep_going: tuple[type[Exception], ...] = (),
) -> list[tuple[T, Exception]]:
    """Run ``work(item, advance)`` for every item on ``jobs`` threads.

    An error of a ``keep_going`` type fails only its item: the others run, and the failed items
    are returned with their errors. On any other failure (or Ctrl-C) nothing new starts, the
    transfers in flight finish, and the error is raised; what completed stays complete, so a
    re-run only does what is left.
    """
    if not items:
        return []
    failed: list[tuple[T, Exception]] = []

    def one(item: T, advance: Advance) -> None:
        try:
            work(item, advance)
        except keep_going as error:
            failed.append((item, error))

    with bar(description, total_bytes) as advance:
        pool = ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="mreg-transfer")
        futures: list[Future[None]] = []
        try:
            futures = [pool.submit(one, item, advance) for item in items]
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            raised = [f for f in done if f.exception() is not None]
            if raised:
                raise raised[0].exception()  # type: ignore[misc]
        finally:
            for future in futures:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
    return failed


@dataclass(frozen=True)
class TransferResult:
    """What a push or fetch moved (files already in place are not counted)."""

    files: int
    bytes: int
    not_cached: int = 0
    # Files the other side had already (same path and size): they did not travel.
    reused_files: int = 0
    reused_bytes: int = 0
