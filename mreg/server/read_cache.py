"""Registry answers a server keeps between requests while the repository's refs stay the same.

Reading one model's entry costs some ten git reads (its tags, the manifest at the tagged
commit); a server asked the same question by many clients answers from memory instead. An
answer is kept while the refs look the same: the names of the tags (versions, stage moves,
removals are all new tags), ``packed-refs``, ``HEAD`` and each branch file's change time. That
check reads directories only (no git process), so a tag made by a CLI beside the server is seen
within ``RECHECK`` (50 ms). What it cannot see, a tag moved in place with ``git tag -f`` within
the file system's timestamp tick, ages out after ``max_age`` seconds. The server's own writes
clear everything (``clear``).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")
MAX_AGE = 1.0  # seconds an answer is trusted without a change the check can see
MAX_ANSWERS = 4096  # beyond this many, the cache starts afresh
# The refs are looked at again at most this often: walking 1,000 tag files for every request
# cost a third of the server's time. A tag made beside the server shows within this delay.
RECHECK = 0.05  # seconds


class ReadCache:
    """Answers keyed by the question (``("entry", name, version)``), valid for one look of
    the refs of the repository at ``root``."""

    def __init__(self, root: Path, max_age: float = MAX_AGE, recheck: float = RECHECK) -> None:
        self.git_dir, self.common_dir = _git_dirs(root)
        self.max_age = max_age
        self.recheck = recheck
        self._lock = threading.Lock()
        self._answers: dict[Hashable, tuple[Any, tuple[Any, ...], float]] = {}
        self._computing: dict[Hashable, threading.Lock] = {}
        self._look: tuple[Any, ...] = ()
        self._looked_at = float("-inf")

    def get(self, question: Hashable, answer: Callable[[], T]) -> T:
        """The kept answer to ``question`` if the refs look as they did when it was computed
        and it is younger than ``max_age``; else ``answer()``, kept. One thread computes a
        question at a time: the others wait for its answer (or, when only age made it due and
        the refs look the same, take the kept one meanwhile). Errors are not kept."""
        look = self._current_look()
        with self._lock:
            kept = self._answers.get(question)
            computing = self._computing.setdefault(question, threading.Lock())
        fresh = kept is not None and time.monotonic() - kept[2] < self.max_age
        if kept is not None and kept[1] == look and (fresh or computing.locked()):
            return kept[0]
        with computing:
            with self._lock:
                kept = self._answers.get(question)
            if kept is not None and kept[1] == look and time.monotonic() - kept[2] < self.max_age:
                return kept[0]
            started = time.monotonic()
            value = answer()
            with self._lock:
                if len(self._answers) >= MAX_ANSWERS:
                    self._answers.clear()
                    self._computing.clear()
                self._answers[question] = (value, look, started)
        return value

    def clear(self) -> None:
        with self._lock:
            self._answers.clear()
            self._looked_at = float("-inf")

    def _current_look(self) -> tuple[Any, ...]:
        """``refs_look``, taken again when the last one is older than ``recheck`` seconds."""
        now = time.monotonic()
        if now - self._looked_at >= self.recheck:
            self._look, self._looked_at = self.refs_look(), now
        return self._look

    def refs_look(self) -> tuple[Any, ...]:
        """What changes when a ref does: tag names, branch files' change times, packed-refs,
        HEAD (a worktree's own HEAD lives in its git dir, the refs in the common one)."""
        refs = self.common_dir / "refs"
        return (
            tuple(_names(refs / "tags")),
            tuple(_stamps(refs / "heads")),
            _stamp(self.common_dir / "packed-refs"),
            _read(self.git_dir / "HEAD"),
        )


def _git_dirs(root: Path) -> tuple[Path, Path]:
    found = subprocess.run(
        ["git", "rev-parse", "--absolute-git-dir", "--git-common-dir"],
        cwd=root,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    git_dir = Path(found[0])
    common = Path(found[1])
    return git_dir, common if common.is_absolute() else (root / common).resolve()


def _names(folder: Path) -> list[str]:
    """Every file under ``folder``, as paths relative to it, in a stable order."""
    found: list[str] = []
    for base, dirs, files in os.walk(folder):
        dirs.sort()
        prefix = os.path.relpath(base, folder)
        found.extend(f if prefix == "." else f"{prefix}/{f}" for f in sorted(files))
    return found


def _stamps(folder: Path) -> list[tuple[str, Any]]:
    return [(name, _stamp(folder / name)) for name in _names(folder)]


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        found = path.stat()
    except FileNotFoundError:
        return None
    return found.st_ino, found.st_size, found.st_mtime_ns


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""
