"""The only module that talks to git (through gitpython and the git binary it drives)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

import git

from mreg.atomic import atomic_write_text
from mreg.errors import GitError, NotARepository, one_line


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
    """The top of the git work tree holding ``start``."""
    try:
        repo = git.Repo(start, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotARepository(
            f"{start} is not inside a git work tree", hint="run `git init` first"
        ) from None
    if repo.bare or repo.working_tree_dir is None:
        raise NotARepository(f"{start} is inside a bare git repository; mreg needs a work tree")
    return Path(repo.working_tree_dir).resolve()


class GitRepo:
    """A git work tree, seen through the few operations mreg needs."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._repo = git.Repo(root)

    def has_commits(self) -> bool:
        try:
            self._repo.head.commit  # noqa: B018 - raises when HEAD is unborn
        except ValueError:
            return False
        return True

    def resolve(self, rev: str) -> str:
        """Full sha of the commit ``rev`` names; GitError when git does not know it."""
        try:
            return self._repo.git.rev_parse("--verify", "--quiet", f"{rev}^{{commit}}").strip()
        except git.GitCommandError:
            raise GitError(
                f"unknown revision '{rev}'", hint="see `git log` or `mreg log NAME`"
            ) from None

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
        output = self._repo.git.ls_tree("-r", "--name-only", "-z", self.resolve(rev))
        return sorted(p for p in output.split("\0") if p.endswith(suffix))

    def work_tree_files(self, suffix: str) -> list[str]:
        """Tracked and untracked (not ignored) paths in the work tree that end in ``suffix``."""
        output = self._repo.git.ls_files(
            "-z", "--cached", "--others", "--exclude-standard", "--", f"*{suffix}"
        )
        return sorted({p for p in output.split("\0") if p and (self.root / p).is_file()})

    def blobs_at(self, rev: str, suffix: str) -> list[tuple[str, str]]:
        """(blob sha, path) of the files ending in ``suffix`` in the tree of ``rev``."""
        output = self._repo.git.ls_tree("-r", "-z", self.resolve(rev))
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
        if not specs:
            return {}
        done = subprocess.run(
            ["git", "cat-file", "--batch"],
            cwd=self.root,
            input="".join(f"{spec}\n" for spec in specs).encode(),
            capture_output=True,
            check=False,
        )
        if done.returncode != 0:
            problem = done.stderr.decode(errors="replace").strip()[:200]
            raise GitError(f"git cat-file failed: {problem}")
        found: dict[str, bytes] = {}
        out, pos = done.stdout, 0
        for spec in specs:
            end = out.index(b"\n", pos)
            header = out[pos:end].split()
            pos = end + 1
            if len(header) != 3:
                continue  # "<spec> missing" or "<spec> ambiguous"
            size = int(header[2])
            data = out[pos : pos + size]
            pos += size + 1
            found[spec] = _tree_text(data) if header[1] == b"tree" else data
        return found

    def log(self, path: str) -> list[Commit]:
        """Commits that touched ``path``, newest first."""
        if not self.has_commits():
            return []
        output = self._repo.git.log("--format=%H%x00%aI%x00%an%x00%s", "--", path)
        commits = []
        for line in output.splitlines():
            sha, date, author, subject = line.split("\0", 3)
            commits.append(Commit(sha, date, author, subject))
        return commits

    def commit(self, rev: str) -> Commit:
        output = self._repo.git.show("-s", "--format=%H%x00%aI%x00%an%x00%s", self.resolve(rev))
        sha, date, author, subject = output.split("\0", 3)
        return Commit(sha, date, author, subject)

    def tags(self, pattern: str = "") -> list[Tag]:
        """Tags whose names start with ``pattern``, with the commit each points at."""
        fields = ["refname:strip=2", "*objectname", "objectname", "contents:subject"]
        fmt = "%00".join(f"%({f})" for f in [*fields, "creatordate:iso-strict"])
        output = self._repo.git.for_each_ref(f"--format={fmt}", f"refs/tags/{pattern}*")
        tags = []
        for line in output.splitlines():
            name, peeled, direct, message, date = line.split("\0", 4)
            tags.append(Tag(name, peeled or direct, message, date))
        return tags

    def create_tag(self, name: str, message: str, rev: str = "HEAD") -> Tag:
        """Create the annotated tag ``name`` at ``rev``; GitError when it already exists."""
        if self._repo.git.tag("--list", name):
            raise GitError(f"tag '{name}' already exists", hint=f"see `git show {name}`")
        try:
            self._repo.git.tag("-a", name, "-m", message, self.resolve(rev))
        except git.GitCommandError as error:
            raise GitError(f"git could not create tag '{name}': {error.stderr.strip()}") from None
        return next(tag for tag in self.tags(name) if tag.name == name)

    def commit_paths(self, folder_rel: str, message: str) -> str:
        """Commit every change under ``folder_rel`` and nothing else the user has staged;
        returns the commit holding the folder as it is now (the last one when unchanged)."""
        driver = self._repo.git
        try:
            driver.add("-A", "--", folder_rel)
            changed = driver.diff("--cached", "--name-only", "--", folder_rel).strip()
            if not changed and self.has_commits():
                last = self.log(folder_rel)
                if last:
                    return last[0].sha
            driver.commit("-q", "-m", message, "--", folder_rel)
        except git.GitCommandError as error:
            raise GitError(f"git could not commit {folder_rel}: {one_line(error)}") from None
        return self.resolve("HEAD")

    def ref_tips(self) -> list[str]:
        """Commits at the tip of every local branch, remote-tracking branch and tag."""
        output = self._repo.git.for_each_ref(
            "--format=%(objectname)%00%(*objectname)", "refs/heads", "refs/remotes", "refs/tags"
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
        return self._repo.git.rev_list("--all").split()


def _tree_text(data: bytes) -> bytes:
    """Git's binary tree entries (``MODE NAME\\0<20-byte sha>``) as ``NAME\\tSHA`` lines."""
    lines, pos = [], 0
    while pos < len(data):
        nul = data.index(b"\0", pos)
        name = data[pos:nul].split(b" ", 1)[1]
        lines.append(name + b"\t" + data[nul + 1 : nul + 21].hex().encode())
        pos = nul + 21
    return b"\n".join(lines)


def ignore_in_git(root: Path, relpath: str) -> None:
    """Add ``/relpath`` to the .gitignore beside it, once."""
    target = root / relpath
    gitignore = target.parent / ".gitignore"
    entry = "/" + target.name
    lines = gitignore.read_text().splitlines() if gitignore.exists() else []
    if entry in lines:
        return
    atomic_write_text(gitignore, "\n".join([*lines, entry]) + "\n")
