"""The work tree, revisions, objects, history and tags of a git repository.

Only ``git.py``, ``git_refs.py`` (what the refs reach, for gc) and ``git_command.py`` (running git)
talk to git.

Queries (the work tree, revisions, file lists, refs, log) run the git binary directly. Object
reads (``show``, ``blob``: gitpython keeps one ``git cat-file`` running for a loop of them), tags
and commits go through gitpython, imported on first use: importing it takes some 50 ms, which
commands that only list files (status, pull, push, ...) need not pay.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.errors import GitError, NotARepository, one_line
from mreg.repo.git_command import cat_file, has_commits, output, problem, run, tree_text
from mreg.repo.git_refs import GitRefs

if TYPE_CHECKING:
    import git


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


def find_work_tree(start: Path) -> Path:
    """The top of the git work tree holding ``start`` (a folder, or a file in one)."""
    outside = NotARepository(f"{start} is not inside a git work tree", hint="run `git init` first")
    if not start.exists():
        raise outside
    folder = start if start.is_dir() else start.parent
    done = run(folder, "rev-parse", "--is-bare-repository", "--show-toplevel")
    if done.returncode == 0:
        return Path(done.stdout.decode("utf-8", "surrogateescape").splitlines()[1]).resolve()
    if done.stdout.startswith(b"true"):
        raise NotARepository(f"{start} is inside a bare git repository; mreg needs a work tree")
    git_dir = _enclosing_git_dir(folder)
    if git_dir is not None:  # inside .git/ itself: git has no top level, its parent is one
        return find_work_tree(git_dir.parent)
    if b"not a git repository" in done.stderr:
        raise outside
    raise NotARepository(f"git refuses {start}: {problem(done)}")


def _enclosing_git_dir(folder: Path) -> Path | None:
    """The ``.git`` folder that ``folder`` lies in, when it lies in one."""
    done = run(folder, "rev-parse", "--is-inside-git-dir", "--absolute-git-dir")
    lines = done.stdout.decode("utf-8", "surrogateescape").splitlines()
    if done.returncode != 0 or lines[:1] != ["true"] or len(lines) < 2:
        return None
    git_dir = Path(lines[1])
    return git_dir if git_dir.name == ".git" else None


class GitRepo:
    """A git work tree, seen through the few operations mreg needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.refs = GitRefs(root)

    @functools.cached_property
    def _repo(self) -> git.Repo:
        import git

        return git.Repo(self.root)

    def _git(self, *args: str) -> str:
        return output(self.root, *args)

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
        done = run(self.root, "var", "GIT_COMMITTER_IDENT")
        if done.returncode != 0:
            return None
        return done.stdout.decode("utf-8", "replace").rsplit(">", 1)[0] + ">"

    def has_commits(self) -> bool:
        return has_commits(self.root)

    def resolve(self, rev: str) -> str:
        """Full sha of the commit ``rev`` names; GitError when git does not know it."""
        done = run(self.root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
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
            spec: tree_text(data) if kind == b"tree" else data
            for spec, (kind, data) in cat_file(self.root, specs).items()
        }

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
        done = run(self.root, "config", "--get", key)
        return done.stdout.decode("utf-8", "replace").strip() if done.returncode == 0 else None

    def set_config(self, key: str, value: str) -> None:
        """Set ``key`` in this repository's own git config (``.git/config``, never committed)."""
        self._git("config", "--local", key, value)

    def hooks_dir(self) -> Path:
        """The folder git runs this repository's hooks from (``core.hooksPath`` honoured)."""
        path = Path(self._git("rev-parse", "--git-path", "hooks"))
        return path if path.is_absolute() else self.root / path
