"""Running the git binary: the one place a git process starts (``git.py`` and ``git_refs.py``
build on it), with messages in English whatever the user's locale."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from mreg.errors import GitError

# As gitpython runs git: messages in English whatever the user's locale.
_GIT_ENV = {"LANGUAGE": "C", "LC_ALL": "C"}


def run(
    cwd: Path, *args: str, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["git", *args],
        cwd=cwd,
        input=input,
        stdin=None if input is not None else subprocess.DEVNULL,
        capture_output=True,
        env={**os.environ, **_GIT_ENV, **(env or {})},
        check=False,
    )


def problem(done: subprocess.CompletedProcess[bytes]) -> str:
    """The start of what git said on stderr, for an error message."""
    return done.stderr.decode(errors="replace").strip()[:200]


def output(root: Path, *args: str) -> str:
    """The output of ``git ARGS`` as gitpython gives it (one trailing newline dropped);
    GitError when git fails."""
    done = run(root, *args)
    if done.returncode != 0:
        raise GitError(f"git {args[0]} failed: {problem(done)}")
    return done.stdout.decode("utf-8", "surrogateescape").removesuffix("\n")


def has_commits(root: Path) -> bool:
    return run(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode == 0


def cat_file(root: Path, specs: list[str]) -> dict[str, tuple[bytes, bytes]]:
    """(type, raw bytes) of each object ``specs`` name, through one ``git cat-file --batch``;
    specs git cannot find are left out."""
    if not specs:
        return {}
    lines = "".join(f"{spec}\n" for spec in specs)
    done = run(root, "cat-file", "--batch", input=lines.encode())
    if done.returncode != 0:
        raise GitError(f"git cat-file failed: {problem(done)}")
    found: dict[str, tuple[bytes, bytes]] = {}
    out, pos = done.stdout, 0
    for spec in specs:
        end = out.index(b"\n", pos)
        header = out[pos:end].split()
        pos = end + 1
        if len(header) != 3:
            continue  # "<spec> missing" or "<spec> ambiguous"
        size = int(header[2])
        found[spec] = (header[1], out[pos : pos + size])
        pos += size + 1
    return found


def tree_text(data: bytes) -> bytes:
    """Git's binary tree entries (``MODE NAME\\0<20-byte sha>``) as ``NAME\\tSHA`` lines."""
    return b"\n".join(name + b"\t" + sha.encode() for _, name, sha in tree_entries(data))


def tree_entries(data: bytes) -> list[tuple[bytes, bytes, str]]:
    """(mode, name, sha) of each entry of a tree in git's binary format."""
    entries, pos = [], 0
    while pos < len(data):
        nul = data.index(b"\0", pos)
        mode, name = data[pos:nul].split(b" ", 1)
        entries.append((mode, name, data[nul + 1 : nul + 21].hex()))
        pos = nul + 21
    return entries
