"""What a repository's refs reach: the tips of branches and tags, reflogs, stashes, other work
trees, the refs of git remotes, and the manifest blobs in the trees of those commits; what
``gc`` keeps and the pre-push hook checks."""

from __future__ import annotations

from pathlib import Path

from mreg.errors import GitError
from mreg.repo.git_command import cat_file, has_commits, output, problem, tree_entries
from mreg.repo.git_command import run as _run


class GitRefs:
    """The refs of the git repository whose work tree is ``root``, and what they reach."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _git(self, *args: str) -> str:
        return output(self.root, *args)

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
        if not has_commits(self.root):
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
            raise GitError(f"git rev-list failed: {problem(listing)}")
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
            for kind, data in cat_file(self.root, level).values():
                for mode, name, sha in tree_entries(data) if kind == b"tree" else []:
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
            raise GitError(f"cannot list the refs of git remote '{remote}': {problem(listing)}")
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
                raise GitError(f"cannot fetch from git remote '{remote}': {problem(done)}")
        return tips

    def _cat_file_check(self, shas: list[str]) -> set[str]:
        """Those of ``shas`` that this repository holds."""
        if not shas:
            return set()
        lines = "".join(f"{sha}\n" for sha in shas).encode()
        done = _run(self.root, "cat-file", "--batch-check=%(objectname) %(objecttype)", input=lines)
        found = (line.split() for line in done.stdout.decode().splitlines())
        return {fields[0] for fields in found if fields[1:] and fields[1] != "missing"}
