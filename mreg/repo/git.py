"""The only module that talks to git.

Queries (the work tree, revisions, file lists, refs, log) run the git binary directly. Object
reads (``show``, ``blob``: gitpython keeps one ``git cat-file`` running for a loop of them), tags
and commits go through gitpython, imported on first use: importing it takes some 50 ms, which
commands that only list files (status, pull, push, ...) need not pay.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.atomic import atomic_write_text
from mreg.errors import GitError, NotARepository, UsageError, one_line

if TYPE_CHECKING:
    import git

# As gitpython runs git: messages in English whatever the user's locale.
_GIT_ENV = {"LANGUAGE": "C", "LC_ALL": "C"}


@dataclass(frozen=True)
class Commit:
    sha: str
    date: str
    author: str
    subject: str


@dataclass(frozen=True)
class Tag:
    name: str
    commit: str
    message: str
    date: str


def _run(
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


def _problem(done: subprocess.CompletedProcess[bytes]) -> str:
    return done.stderr.decode(errors="replace").strip()[:200]


def find_work_tree(start: Path) -> Path:
    """The top of the git work tree holding ``start`` (a folder, or a file in one)."""
    outside = NotARepository(f"{start} is not inside a git work tree", hint="run `git init` first")
    if not start.exists():
        raise outside
    folder = start if start.is_dir() else start.parent
    done = _run(folder, "rev-parse", "--is-bare-repository", "--show-toplevel")
    if done.returncode == 0:
        return Path(done.stdout.decode("utf-8", "surrogateescape").splitlines()[1]).resolve()
    if done.stdout.startswith(b"true"):
        raise NotARepository(f"{start} is inside a bare git repository; mreg needs a work tree")
    git_dir = _enclosing_git_dir(folder)
    if git_dir is not None:  # inside .git/ itself: git has no top level, its parent is one
        return find_work_tree(git_dir.parent)
    if b"not a git repository" in done.stderr:
        raise outside
    raise NotARepository(f"git refuses {start}: {_problem(done)}")


def _enclosing_git_dir(folder: Path) -> Path | None:
    """The ``.git`` folder that ``folder`` lies in, when it lies in one."""
    done = _run(folder, "rev-parse", "--is-inside-git-dir", "--absolute-git-dir")
    lines = done.stdout.decode("utf-8", "surrogateescape").splitlines()
    if done.returncode != 0 or lines[:1] != ["true"] or len(lines) < 2:
        return None
    git_dir = Path(lines[1])
    return git_dir if git_dir.name == ".git" else None


class GitRepo:
    """A git work tree, seen through the few operations mreg needs."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @functools.cached_property
    def _repo(self) -> git.Repo:
        import git

        return git.Repo(self.root)

    def _git(self, *args: str) -> str:
        """The output of ``git ARGS`` as gitpython gives it (one trailing newline dropped)."""
        done = _run(self.root, *args)
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {_problem(done)}")
        return done.stdout.decode("utf-8", "surrogateescape").removesuffix("\n")

    def tracked(self, path: str) -> list[tuple[str, str]]:
        """(mode, path) of every entry of git's index at or under ``path`` (mode ``120000``: a
        symbolic link, ``160000``: a submodule); ``path`` is a path, never a pattern."""
        found = []
        for line in self._git("ls-files", "--stage", "-z", "--", f":(literal){path}").split("\0"):
            if line:
                meta, name = line.split("\t", 1)
                found.append((meta.split()[0], name))
        return found

    def identity(self) -> str | None:
        """``Name <email>`` that git would write into a commit, or None when git has none
        (no user.name / user.email and no GIT_COMMITTER_* variables)."""
        done = _run(self.root, "var", "GIT_COMMITTER_IDENT")
        if done.returncode != 0:
            return None
        return done.stdout.decode("utf-8", "replace").rsplit(">", 1)[0] + ">"

    def has_commits(self) -> bool:
        return _run(self.root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}").returncode == 0

    def resolve(self, rev: str) -> str:
        """Full sha of the commit ``rev`` names; GitError when git does not know it."""
        done = _run(self.root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
        if done.returncode != 0:
            raise GitError(f"unknown revision '{rev}'", hint="see `git log` or `mreg log NAME`")
        return done.stdout.decode().strip()

    def show(self, rev: str, path: str) -> bytes | None:
        """Bytes of ``path`` at ``rev``, or None when the file does not exist there."""
        try:
            blob = self._repo.commit(self.resolve(rev)).tree / path
        except KeyError:
            return None
        data: bytes = blob.data_stream.read()
        return data

    def files_at(self, rev: str, suffix: str) -> list[str]:
        """Paths of the files ending in ``suffix`` in the tree of ``rev``."""
        output = self._git("ls-tree", "-r", "--name-only", "-z", self.resolve(rev))
        return sorted(p for p in output.split("\0") if p.endswith(suffix))

    def work_tree_files(self, suffix: str) -> list[str]:
        """Tracked and untracked (not ignored) paths in the work tree that end in ``suffix``."""
        output = self._git(
            "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", f"*{suffix}"
        )
        return sorted({p for p in output.split("\0") if p and (self.root / p).is_file()})

    def blobs_at(self, rev: str, suffix: str) -> list[tuple[str, str]]:
        """(blob sha, path) of the files ending in ``suffix`` in the tree of ``rev``."""
        output = self._git("ls-tree", "-r", "-z", self.resolve(rev))
        found = []
        for line in output.split("\0"):
            if not line:
                continue
            meta, path = line.split("\t", 1)
            if path.endswith(suffix) and meta.split()[1] == "blob":
                found.append((meta.split()[2], path))
        return found

    def blob(self, sha: str) -> bytes:
        data: bytes = self._repo.odb.stream(bytes.fromhex(sha)).read()
        return data

    def read_blobs(self, specs: list[str]) -> dict[str, bytes]:
        """Contents of many objects (``REV:path`` or a sha) through one ``git cat-file --batch``;
        specs git cannot find are left out. A tree comes back as text, one ``NAME\\tSHA`` line per
        entry, so callers never parse git's binary tree format."""
        return {
            spec: _tree_text(data) if kind == b"tree" else data
            for spec, (kind, data) in self._cat_file(specs).items()
        }

    def _cat_file(self, specs: list[str]) -> dict[str, tuple[bytes, bytes]]:
        """(type, raw bytes) of each object ``specs`` name, through one ``git cat-file --batch``;
        specs git cannot find are left out."""
        if not specs:
            return {}
        lines = "".join(f"{spec}\n" for spec in specs)
        done = _run(self.root, "cat-file", "--batch", input=lines.encode())
        if done.returncode != 0:
            raise GitError(f"git cat-file failed: {_problem(done)}")
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

    def stage(self, paths: list[str]) -> None:
        """``git add -A`` of exactly these paths (each existing, or tracked): additions,
        changes and removals, as ``git mv`` stages a move."""
        self._git("add", "-A", "--", *(f":(literal){p}" for p in paths))

    def log(self, path: str) -> list[Commit]:
        """Commits that touched ``path``, newest first."""
        if not self.has_commits():
            return []
        output = self._git("log", "--format=%H%x00%aI%x00%an%x00%s", "--", path)
        commits = []
        for line in output.splitlines():
            sha, date, author, subject = line.split("\0", 3)
            commits.append(Commit(sha, date, author, subject))
        return commits

    def changes(self, suffix: str) -> list[tuple[Commit, list[str]]]:
        """Every commit (newest first) that added, changed or removed a file whose name ends
        with ``suffix``, anywhere in the tree and under any path, with those files' paths."""
        if not self.has_commits():
            return []
        output = self._git(
            "-c", "core.quotePath=false", "log", "--no-renames", "--name-only",
            "--format=%x01%H%x00%aI%x00%an%x00%s", "--", f"*{suffix}",
        )  # fmt: skip
        found = []
        for record in output.split("\x01")[1:]:
            header, _, names = record.partition("\n")
            sha, date, author, subject = header.split("\0", 3)
            paths = [n for n in names.splitlines() if n.endswith(suffix)]
            found.append((Commit(sha, date, author, subject), paths))
        return found

    def last_change(self, path: str, rev: str = "HEAD") -> Commit | None:
        """The newest commit at or before ``rev`` that changed ``path``, or None."""
        if not self.has_commits():
            return None
        output = self._git("log", "-1", "--format=%H%x00%aI%x00%an%x00%s", rev, "--", path)
        if not output:
            return None
        sha, date, author, subject = output.split("\0", 3)
        return Commit(sha, date, author, subject)

    def commit(self, rev: str) -> Commit:
        output = self._git("show", "-s", "--format=%H%x00%aI%x00%an%x00%s", self.resolve(rev))
        sha, date, author, subject = output.split("\0", 3)
        return Commit(sha, date, author, subject)

    def tags(self, pattern: str = "") -> list[Tag]:
        """Tags whose names start with ``pattern``, with the commit each points at."""
        fields = ["refname:strip=2", "*objectname", "objectname", "contents:subject"]
        fmt = "%00".join(f"%({f})" for f in [*fields, "creatordate:iso-strict"])
        output = self._git("for-each-ref", f"--format={fmt}", f"refs/tags/{pattern}*")
        tags = []
        for line in output.splitlines():
            name, peeled, direct, message, date = line.split("\0", 4)
            tags.append(Tag(name, peeled or direct, message, date))
        return tags

    def create_tag(self, name: str, message: str, rev: str = "HEAD") -> Tag:
        """Create the annotated tag ``name`` at ``rev``; GitError when it already exists."""
        import git

        if self._repo.git.tag("--list", name):
            raise GitError(f"tag '{name}' already exists", hint=f"see `git show {name}`")
        try:
            self._repo.git.tag("-a", name, "-m", message, self.resolve(rev))
        except git.GitCommandError as error:
            raise GitError(f"git could not create tag '{name}': {error.stderr.strip()}") from None
        return next(tag for tag in self.tags(name) if tag.name == name)

    def commit_paths(self, folder_rel: str, message: str, *more: str) -> str:
        """Commit every change under ``folder_rel`` (and the paths ``more``) and nothing else
        the user has staged; returns the commit holding the folder as it is now (the last one
        that changed it when nothing changed)."""
        import git

        driver = self._repo.git
        try:
            driver.add("-A", "--", folder_rel, *more)
            changed = driver.diff("--cached", "--name-only", "--", folder_rel, *more).strip()
            if not changed and self.has_commits():
                last = self.log(folder_rel)
                if last:
                    return last[0].sha
            driver.commit("-q", "-m", message, "--", folder_rel, *more)
        except git.GitCommandError as error:
            raise GitError(f"git could not commit {folder_rel}: {one_line(error)}") from None
        return self.resolve("HEAD")

    def config_value(self, key: str) -> str | None:
        """The repository's value of git setting ``key``, or None when it is not set."""
        done = _run(self.root, "config", "--get", key)
        return done.stdout.decode("utf-8", "replace").strip() if done.returncode == 0 else None

    def set_config(self, key: str, value: str) -> None:
        """Set ``key`` in this repository's own git config (``.git/config``, never committed)."""
        self._git("config", "--local", key, value)

    def hooks_dir(self) -> Path:
        """The folder git runs this repository's hooks from (``core.hooksPath`` honoured)."""
        path = Path(self._git("rev-parse", "--git-path", "hooks"))
        return path if path.is_absolute() else self.root / path

    def unpushed_commits(self, tip: str, remote: str) -> list[str]:
        """Commits reachable from ``tip`` that no remote-tracking branch of the git remote
        ``remote`` holds (all of them for a remote given as a URL): what a push sends."""
        return self._git("rev-list", tip, "--not", f"--remotes={remote}", "--").split()

    def ref_tips(self) -> list[str]:
        """Commits at the tip of every local branch, remote-tracking branch and tag."""
        output = self._git(
            "for-each-ref",
            "--format=%(objectname)%00%(*objectname)",
            "refs/heads",
            "refs/remotes",
            "refs/tags",
        )
        tips = set()
        for line in output.splitlines():
            direct, peeled = line.split("\0")
            tips.add(peeled or direct)
        return sorted(tips)

    def all_commits(self) -> list[str]:
        """Every commit reachable from any ref."""
        if not self.has_commits():
            return []
        return self._git("rev-list", "--all").split()

    def kept_commits(self, walk: bool = False, also: list[str] | None = None) -> list[str]:
        """The commits whose data ``gc`` keeps: HEAD of every work tree, every ref under
        ``refs/`` (branches, remote-tracking branches, tags, ``refs/stash``, ``refs/notes``, ...),
        every reflog entry of those (git keeps them 30 to 90 days), the index and
        untracked-files commits of every stash entry, and the commits ``also`` names (objects
        that are not commits are left out); with ``walk``, every commit reachable from them."""
        peeled = self._commits_among(also or [])
        walking = [] if walk else ["--no-walk"]
        listing = _run(
            self.root,
            *("rev-list", *walking, "--all", "--reflog", "--stdin"),
            input="".join(f"{sha}\n" for sha in peeled).encode(),
        )
        if listing.returncode != 0:
            raise GitError(f"git rev-list failed: {_problem(listing)}")
        commits = set(listing.stdout.decode().split())
        if _run(self.root, "rev-parse", "--verify", "--quiet", "refs/stash").returncode == 0:
            for parents in self._git("log", "-g", "--format=%P", "refs/stash").splitlines():
                commits.update(parents.split()[1:])  # [0] is the commit the stash was made on
        return sorted(commits)

    def _commits_among(self, objects: list[str]) -> list[str]:
        """The commit each of ``objects`` is or (a tag) points at; others are left out."""
        if not objects:
            return []
        lines = "".join(f"{sha}^{{commit}}\n" for sha in objects).encode()
        done = _run(self.root, "cat-file", "--batch-check=%(objectname) %(objecttype)", input=lines)
        found = (line.split() for line in done.stdout.decode().splitlines())
        return sorted({fields[0] for fields in found if fields[1:] == ["commit"]})

    def blobs_named(self, revisions: list[str], suffix: str) -> set[str]:
        """Blob shas of the files whose name ends in ``suffix`` in the trees of ``revisions``
        (commits, tags or trees). Each tree is read once, however many revisions share it, in a
        few ``git cat-file --batch`` calls (one per level of folders)."""
        level = [f"{rev}^{{tree}}" for rev in revisions]
        seen: set[str] = set()
        found: set[str] = set()
        while level:
            subtrees = []
            for kind, data in self._cat_file(level).values():
                for mode, name, sha in _tree_entries(data) if kind == b"tree" else []:
                    if mode == b"40000" and sha not in seen:
                        seen.add(sha)
                        subtrees.append(sha)
                    elif mode.startswith(b"100") and name.endswith(suffix.encode()):
                        found.add(sha)
            level = subtrees
        return found

    def index_blobs(self, suffix: str) -> set[str]:
        """Blob shas of the files ending in ``suffix`` in this work tree's index (staged)."""
        output = self._git("ls-files", "--stage", "-z", "--", f"*{suffix}")
        return {line.split()[1] for line in output.split("\0") if line}

    def work_trees(self) -> list[Path]:
        """Every work tree of this repository that exists on disk (``git worktree list``)."""
        output = self._git("worktree", "list", "--porcelain", "-z")
        found = []
        for field in output.split("\0"):
            if field.startswith("worktree "):
                path = Path(field.removeprefix("worktree "))
                if (path / ".git").exists():
                    found.append(path)
        return found

    def git_remotes(self) -> list[str]:
        """Names of the git remotes this clone has configured."""
        return self._git("remote").split()

    def fetch_every_ref(self, remote: str) -> list[str]:
        """Fetch the objects of every ref the git remote has (branches, tags, and any other ref:
        pull requests, notes, ...) without writing any ref; returns the object ids of those refs.

        GitError when the remote cannot be reached or refuses."""
        listing = _run(self.root, "ls-remote", remote, env={"GIT_TERMINAL_PROMPT": "0"})
        if listing.returncode != 0:
            raise GitError(f"cannot list the refs of git remote '{remote}': {_problem(listing)}")
        tips = sorted(
            {
                line.split("\t")[0]
                for line in listing.stdout.decode().splitlines()
                if line and not line.endswith("^{}")
            }
        )
        missing = [sha for sha in tips if sha not in self._cat_file_check(tips)]
        if missing:
            done = _run(
                self.root,
                *("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--stdin", remote),
                input="".join(f"{sha}\n" for sha in missing).encode(),
                env={"GIT_TERMINAL_PROMPT": "0"},
            )
            if done.returncode != 0:
                raise GitError(f"cannot fetch from git remote '{remote}': {_problem(done)}")
        return tips

    def _cat_file_check(self, shas: list[str]) -> set[str]:
        """Those of ``shas`` that this repository holds."""
        if not shas:
            return set()
        lines = "".join(f"{sha}\n" for sha in shas).encode()
        done = _run(self.root, "cat-file", "--batch-check=%(objectname) %(objecttype)", input=lines)
        found = (line.split() for line in done.stdout.decode().splitlines())
        return {fields[0] for fields in found if fields[1:] and fields[1] != "missing"}


def _tree_text(data: bytes) -> bytes:
    """Git's binary tree entries (``MODE NAME\\0<20-byte sha>``) as ``NAME\\tSHA`` lines."""
    return b"\n".join(name + b"\t" + sha.encode() for _, name, sha in _tree_entries(data))


def _tree_entries(data: bytes) -> list[tuple[bytes, bytes, str]]:
    """(mode, name, sha) of each entry of a tree in git's binary format."""
    entries, pos = [], 0
    while pos < len(data):
        nul = data.index(b"\0", pos)
        mode, name = data[pos:nul].split(b" ", 1)
        entries.append((mode, name, data[nul + 1 : nul + 21].hex()))
        pos = nul + 21
    return entries


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
