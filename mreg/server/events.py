"""Events and jobs: what WebSocket subscribers hear, and long operations that run in the
background with an id a client can await.

``Events.publish`` may be called from any thread (handlers run in a thread pool); each
subscriber has its own bounded queue on the server's event loop, so a slow subscriber loses its
oldest events, never blocks a write. A job runs in a worker thread, reports progress as
``job_progress`` events, and keeps its result (or error) for ``GET /api/v1/jobs/{id}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from mreg.errors import MregError, UsageError

QUEUE = 1000


class Events:
    """The server's event bus: publish from anywhere, subscribe on the event loop."""

    def __init__(self) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        self._loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` (with a ``time``) to every subscriber; safe from any thread."""
        loop = self._loop
        if loop is None or not self._subscribers:
            return
        stamped = {**event, "time": time.time()}
        with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
            loop.call_soon_threadsafe(self._deliver, stamped)

    def _deliver(self, event: dict[str, Any]) -> None:
        for queue in list(self._subscribers):
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(event)


@dataclass
class Job:
    """A long operation: ``state`` is ``running``, ``done`` or ``failed``."""

    id: str
    kind: str
    state: str = "running"
    progress: float = 0.0
    result: Any = None
    error: dict[str, Any] | None = None
    finished: threading.Event = field(default_factory=threading.Event)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "kind": self.kind, "state": self.state, "progress": self.progress,
                "result": self.result, "error": self.error}  # fmt: skip


class Jobs:
    """Jobs by id, run two at a time in worker threads."""

    def __init__(self, events: Events, describe: Callable[[MregError], dict[str, Any]]) -> None:
        self.events = events
        self.describe = describe
        self._jobs: dict[str, Job] = {}
        self._ids = itertools.count(1)
        self._pool = ThreadPoolExecutor(2, thread_name_prefix="mreg-job")

    def start(self, kind: str, work: Callable[[Callable[[float], None]], Any]) -> Job:
        """Run ``work(report)`` in the background; ``report(fraction)`` publishes progress."""
        job = Job(id=f"{kind}-{next(self._ids)}", kind=kind)
        self._jobs[job.id] = job
        self._pool.submit(self._run, job, work)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            from mreg.errors import ModelNotFound

            raise ModelNotFound(
                f"no job {job_id[:80]!r}", hint="job ids come from the call that started it"
            )
        return job

    def _run(self, job: Job, work: Callable[[Callable[[float], None]], Any]) -> None:
        def report(fraction: float) -> None:
            job.progress = fraction
            self.events.publish({"event": "job_progress", "job": job.id, "progress": fraction})

        try:
            job.result = work(report)
            job.state, job.progress = "done", 1.0
        except MregError as error:
            job.state, job.error = "failed", self.describe(error)
        except Exception as error:
            job.state, job.error = "failed", {"error": f"{type(error).__name__}: {error}"}
        finally:
            job.finished.set()
            self.events.publish({"event": "job_finished", "job": job.id, "state": job.state})

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def check_wait(seconds: float) -> float:
    if not 0 <= seconds <= 600:
        raise UsageError("wait must be between 0 and 600 seconds")
    return seconds
