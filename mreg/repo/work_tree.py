"""``WorkTree``: one git work tree under mreg, where it lies and what it holds open (config, git,
state, cache, lock), with the checks on paths that every verb shares.

The verbs (``add.py``, ``push.py``, ...) take a ``WorkTree``; ``Repo`` in ``mreg.repo`` is the
``WorkTree`` that adds them as methods. The verbs never name ``Repo``, so ``Repo`` can import
them without a circle.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING, Self

from mreg.config import Config, RemoteConfig
from mreg.errors import NotARepository, UnsafeRepository, UsageError
from mreg.repo import manifest as manifests
from mreg.repo import workspace
from mreg.repo.cache import Cache
from mreg.repo.git import GitRepo, find_work_tree
from mreg.repo.lock import RepoLock
from mreg.repo.state import State

if TYPE_CHECKING:
    from mreg.repo.manifest import Manifest
    from mreg.storage import Store

MREG_DIR = ".mreg"
MREG_GITIGNORE = "/cache/\n/tmp/\n/config.local.toml\n/state.json\n/lock\n"
# All that a repository may commit under .mreg/ (as regular files): the rest there is this
# machine's own (cache, state, lock, secrets), so a clone must never get it from git.
COMMITTED_MREG_FILES = (f"{MREG_DIR}/config.toml", f"{MREG_DIR}/.gitignore")
_REGULAR_MODES = ("100644", "100755")


class WorkTree:
    """A git work tree in which ``mreg init`` ran."""

    def __init__(self, path: str | Path = ".") -> None:
        self.root = find_work_tree(_resolve(path))
        self.dir = self.root / MREG_DIR
        self.git = GitRepo(self.root)
        refuse_committed_local_files(self.git)
        if not (self.dir / "config.toml").exists():
            raise NotARepository(
                f"mreg is not initialised in {self.root}", hint="run `mreg init` there"
            )
        self.state = State(self.dir, self.root)
        self.cache = Cache(self.dir, self.state)
        self.lock = RepoLock(self.dir / "lock")

    @classmethod
    def init(cls, path: str | Path = ".") -> Self:
        """Set up mreg in the git work tree holding ``path``; harmless when done already."""
        root = find_work_tree(_resolve(path))
        refuse_committed_local_files(GitRepo(root))
        mreg_dir = root / MREG_DIR
        mreg_dir.mkdir(exist_ok=True)
        config = mreg_dir / "config.toml"
        if not config.exists():
            config.write_text(
                "# mreg configuration: commit this file; secrets go in config.local.toml\n"
            )
        gitignore = mreg_dir / ".gitignore"
        if not gitignore.exists():
            gitignore.write_text(MREG_GITIGNORE)
        return cls(root)

    @functools.cached_property
    def config(self) -> Config:
        return Config(self.dir)

    def manifests(self) -> dict[str, Manifest]:
        """Every manifest in the work tree, by its path relative to the root."""
        return {
            rel: manifests.read(self.root / rel, rel)
            for rel in self.git.work_tree_files(manifests.SUFFIX)
        }

    def manifests_at(self, rev: str) -> dict[str, Manifest]:
        """Every manifest in the commit ``rev`` names, read from git alone."""
        found = {}
        for rel in self.git.files_at(rev, manifests.SUFFIX):
            data = self.git.show(rev, rel)
            if data is not None:
                found[rel] = manifests.loads(data.decode("utf-8"), f"{rel} at {rev}")
        return found

    def lookup(self, name: str, rev: str | None = None) -> tuple[str, Manifest] | None:
        """(manifest path, manifest) of the artifact named ``name`` in the work tree (or at
        ``rev``); None when there is none."""
        found = self.manifests() if rev is None else self.manifests_at(rev)
        for rel, manifest in found.items():
            if manifest.name == name:
                return rel, manifest
        return None

    def workspace_digest(self, artifact_rel: str, companions: tuple[str, ...] = ()) -> str | None:
        """See ``mreg.repo.workspace``."""
        return workspace.workspace_digest(self.state, artifact_rel, companions)

    def workspace_in_sync(self, artifact_rel: str, manifest: Manifest) -> bool:
        """See ``mreg.repo.workspace``."""
        return workspace.workspace_in_sync(self.state, artifact_rel, manifest)

    def remote(self, name: str | None = None) -> RemoteConfig:
        return self.config.remote(name)

    def store(self, remote: str | None = None, jobs: int = 8) -> Store:
        from mreg.storage import open_store

        return open_store(self.remote(remote), self.root, jobs=jobs)

    def path_in_work_tree(self, path: str | Path) -> Path:
        """``path`` made absolute; UsageError when it lies outside the work tree."""
        absolute = Path(path)
        if not absolute.is_absolute():
            absolute = Path.cwd() / absolute
        absolute = absolute.resolve()
        if not absolute.is_relative_to(self.root):
            raise UsageError(f"{path} is outside the repository {self.root}")
        parts = absolute.relative_to(self.root).parts
        if parts and parts[0] in (".git", MREG_DIR):
            raise UsageError(f"{path} is inside {parts[0]}/, which mreg does not track")
        return absolute

    def write_target(self, relpath: str) -> Path:
        """``root / relpath`` for a file mreg is about to write there, after checking that its
        folder, every symbolic link in it followed, lies inside the work tree: a link that a
        clone holds (``models -> ~/.ssh``) never makes mreg write outside it. The file itself
        may be a link: writes replace it, they never write through it."""
        path = self.root / relpath
        folder = path.parent.resolve()
        inside = folder.is_relative_to(self.root)
        parts = folder.relative_to(self.root).parts if inside else ()
        if not inside or parts[:1] in ((".git",), (MREG_DIR,)):
            where = f"inside {parts[0]}/" if inside else "outside the repository"
            raise UnsafeRepository(
                f"{relpath}: its folder is a symbolic link to {folder}, {where}; "
                "mreg does not write there",
                hint="replace the link with a folder (`git rm` it if the repository commits it)",
            )
        return path

    def relpath(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()


def refuse_committed_local_files(git: GitRepo) -> None:
    """UnsafeRepository when git tracks anything under ``.mreg/`` but its config and
    .gitignore as regular files: a committed state.json would be trusted as this machine's
    hashes, a committed ``cache/data`` link would make a pull write where it points. Links the
    user made locally (a cache on another disk) are not in git, and are the user's own."""
    for mode, path in git.tracked(MREG_DIR):
        if path in COMMITTED_MREG_FILES and mode in _REGULAR_MODES:
            continue
        what = "a symbolic link " if mode == "120000" else ""
        raise UnsafeRepository(
            f"the repository commits {what}{path}; mreg takes nothing under {MREG_DIR}/ from "
            f"git but config.toml and .gitignore (local state, cache and secrets live there)",
            hint=f"`git rm -r --cached {path}` and commit; delete it too unless you made it",
        )


def _resolve(path: str | Path) -> Path:
    """``path`` made absolute; a clear error when the current directory was deleted under us
    (a shell left in a removed folder), instead of a traceback from ``os.getcwd``."""
    try:
        return Path(path).resolve()
    except FileNotFoundError:
        raise UsageError(
            "the current directory no longer exists", hint="cd into the repository again"
        ) from None
