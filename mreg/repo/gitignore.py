""".gitignore lines that keep exactly one artifact's file or folder out of git."""

from __future__ import annotations

import re
from pathlib import Path

from mreg.atomic import atomic_write_text
from mreg.errors import UsageError


def ignore_in_git(root: Path, relpath: str) -> None:
    """Add the line that ignores exactly ``relpath`` to the .gitignore beside it, once."""
    target = root / relpath
    gitignore = target.parent / ".gitignore"
    entry = ignore_line(target.name)
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if entry in lines:
        return
    atomic_write_text(gitignore, "\n".join([*lines, entry]) + "\n")


def ignore_line(name: str) -> str:
    """The .gitignore line that matches the file or folder ``name`` beside it and nothing else:
    anchored, with every pattern character escaped (``* ? [ ] \\ ! #``, trailing spaces)."""
    if "\n" in name or "\r" in name:
        raise UsageError(
            f"{name!r} holds a line break, which a .gitignore line cannot match",
            hint="rename the file",
        )
    escaped = re.sub(r"([*?\[\]\\!#])", r"\\\1", name)
    kept = escaped.rstrip(" ")
    return "/" + kept + "\\ " * (len(escaped) - len(kept))
