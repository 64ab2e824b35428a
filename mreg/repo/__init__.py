"""``Repo``: one git work tree under mreg, and every operation on it.

Each verb lives in its own module (``add.py``, ``push.py``, ...); ``Repo`` delegates in one line so
that Python users and the CLI call the same functions with the same names.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from mreg.config import Config, RemoteConfig
from mreg.errors import ArtifactNotFound, NotARepository, UnsafeRepository, UsageError
from mreg.repo import manifest as manifests
from mreg.repo.cache import Cache
from mreg.repo.git import GitRepo, find_work_tree
from mreg.repo.lock import RepoLock
from mreg.repo.manifest import Manifest
from mreg.repo.state import State

if TYPE_CHECKING:
    import lance

    from mreg.repo.add import AddResult, Engine, Mode
    from mreg.repo.checkout import CheckedOut
    from mreg.repo.diff import Diff
    from mreg.repo.doctor import Check
    from mreg.repo.gc import GcReport
    from mreg.repo.install_git import Installed
    from mreg.repo.move import Moved
    from mreg.repo.status import ArtifactStatus
    from mreg.repo.usage import Usage
    from mreg.repo.verify import Problem
    from mreg.repo.versions import LogEntry
    from mreg.storage import Store
    from mreg.storage.transfer import TransferResult

MREG_DIR = ".mreg"
MREG_GITIGNORE = "/cache/\n/tmp/\n/config.local.toml\n/state.json\n/lock\n"
# All that a repository may commit under .mreg/ (as regular files): the rest there is this
# machine's own (cache, state, lock, secrets), so a clone must never get it from git.
COMMITTED_MREG_FILES = (f"{MREG_DIR}/config.toml", f"{MREG_DIR}/.gitignore")
_REGULAR_MODES = ("100644", "100755")


@dataclass(frozen=True)
class Target:
    """An artifact as a command addresses it: its manifest, and the revision it came from."""

    manifest_rel: str
    manifest: Manifest
    rev: str | None = None

    @property
    def artifact_rel(self) -> str:
        return self.manifest_rel.removesuffix(manifests.SUFFIX)


class Repo:
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
    def init(cls, path: str | Path = ".") -> Repo:
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

    # -- paths and manifests ------------------------------------------------------------

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

    def manifests_by_blob(self, rev: str, skip: set[str]) -> list[tuple[str, Manifest]]:
        """Manifests at ``rev`` as (blob sha, manifest), skipping blobs already seen."""
        found = []
        for blob, rel in self.git.blobs_at(rev, manifests.SUFFIX):
            if blob not in skip:
                text = self.git.blob(blob).decode("utf-8")
                found.append((blob, manifests.loads(text, f"{rel} at {rev[:12]}")))
        return found

    def lookup(self, name: str, rev: str | None = None) -> tuple[str, Manifest] | None:
        found = self.manifests() if rev is None else self.manifests_at(rev)
        for rel, manifest in found.items():
            if manifest.name == name:
                return rel, manifest
        return None

    def target(self, spec: str) -> Target:
        """Resolve ``NAME``, ``NAME@VERSION``, ``NAME@REV`` or a path to one artifact.

        A path (relative to the current directory) to an artifact of this work tree comes first;
        a path outside the work tree, or to no artifact, is looked up as a name, so the current
        directory never hides an artifact of another repository. A path outside that is no name
        either is refused as outside the repository.
        """
        name, _, rev = spec.partition("@")
        if rev:
            rev = f"{name}@{rev}" if self.git.tags(f"{name}@{rev}") else rev
            self.git.resolve(rev)
            found = self.lookup(name, rev)
            if found is None:
                raise ArtifactNotFound(f"no artifact named '{name}' at {rev}")
            return Target(found[0], found[1], rev)
        refused: UsageError | None = None
        try:
            by_path = self._target_by_path(spec)
        except UsageError as error:
            by_path, refused = None, error
        if by_path is not None:
            return by_path
        found = self.lookup(spec)
        if found is not None:
            return Target(*found)
        if refused is not None:
            raise refused
        raise ArtifactNotFound(f"no artifact named '{spec}'", hint="see `mreg ls`")

    def targets(self, specs: list[str] | tuple[str, ...] | None) -> list[Target]:
        """The named artifacts, or every artifact in the work tree when none is named."""
        if specs:
            return [self.target(spec) for spec in specs]
        return [Target(rel, m) for rel, m in self.manifests().items()]

    def _target_by_path(self, spec: str) -> Target | None:
        candidate = Path(spec)
        if not candidate.exists() and not Path(spec + manifests.SUFFIX).exists():
            return None
        absolute = self.path_in_work_tree(candidate)
        rel = self.relpath(absolute)
        rel = rel if rel.endswith(manifests.SUFFIX) else rel + manifests.SUFFIX
        if not (self.root / rel).exists():
            return None
        return Target(rel, manifests.read(self.root / rel, rel))

    def workspace_digest(self, artifact_rel: str, companions: tuple[str, ...] = ()) -> str | None:
        """sha256 of the artifact in the work tree; with companion files that exist, one digest
        over the artifact and them (a restored self-contained file has none: its own sha256)."""
        digest = self.state.file_sha256(artifact_rel)
        folder = PurePosixPath(artifact_rel).parent
        present = [
            (folder / c).as_posix() for c in companions if (self.root / folder / c).is_file()
        ]
        if digest is None or not present:
            return digest
        lines = [digest] + [f"{c}\0{self.state.file_sha256(c)}" for c in present]
        return hashlib.sha256("\n".join(lines).encode()).hexdigest()

    def workspace_in_sync(self, artifact_rel: str, manifest: Manifest) -> bool:
        digest = self.workspace_digest(artifact_rel, manifest.source.companions)
        if digest is None:
            return False
        return digest in (
            manifest.source.sha256,
            self.state.restored_sha256(artifact_rel, manifest.content_key()),
        )

    def remote(self, name: str | None = None) -> RemoteConfig:
        return self.config.remote(name)

    def store(self, remote: str | None = None, jobs: int = 8) -> Store:
        from mreg.storage import open_store

        return open_store(self.remote(remote), self.root, jobs=jobs)

    # -- verbs --------------------------------------------------------------------------

    def add(
        self,
        path: str | Path,
        name: str | None = None,
        kind: str | None = None,
        format: str | None = None,
        mode: Mode = "overwrite",
        meta: dict[str, str] | None = None,
        skip_bad: bool = False,
        source_url: str = "",
        replace_meta: bool = False,
        engine: Engine | None = None,
    ) -> AddResult:
        """See ``mreg.repo.add_options.AddOptions``; ``engine`` (``mreg.ray.RayEngine``)
        converts a dataset on a Ray cluster."""
        from mreg.repo.add import AddOptions, add

        options = AddOptions(
            name=name,
            kind=kind,
            format=format,
            mode=mode,
            meta=meta or {},
            skip_bad=skip_bad,
            source_url=source_url,
            replace_meta=replace_meta,
            engine=engine,
        )
        with self.lock.held():
            return add(self, path, options)

    def import_url(
        self,
        url: str,
        path: str | Path | None = None,
        sha256: str | None = None,
        name: str | None = None,
        kind: str | None = None,
        meta: dict[str, str] | None = None,
        force: bool = False,
    ) -> AddResult:
        """Download ``url`` (resuming, checked against ``sha256``) to ``path``, then add it."""
        from mreg.repo.import_options import ImportOptions
        from mreg.repo.url_import import import_url

        options = ImportOptions(path=path, name=name, kind=kind, meta=meta or {}, force=force)
        with self.lock.held():
            return import_url(self, url, options, sha256)

    def import_hf(
        self,
        uri: str,
        path: str | Path | None = None,
        kind: str | None = None,
        allow: list[str] | None = None,
        name: str | None = None,
        meta: dict[str, str] | None = None,
        force: bool = False,
    ) -> AddResult:
        """Import ``hf://ORG/NAME[@REV]`` or ``hf-dataset://NAME[...]`` to ``path``, then add it."""
        from mreg.repo.hf_import import import_hf
        from mreg.repo.import_options import ImportOptions

        options = ImportOptions(path=path, name=name, kind=kind, meta=meta or {}, force=force)
        with self.lock.held():
            return import_hf(self, uri, options, allow)

    def checkout_manifest(self, manifest_rel: str, manifest: Manifest, force: bool = False) -> Path:
        from mreg.repo.checkout import restore

        return restore(self, manifest_rel, manifest, force=force)

    def checkout(self, targets: list[str] | None = None, force: bool = False) -> CheckedOut:
        from mreg.repo.checkout import checkout

        with self.lock.held():
            return checkout(self, targets, force=force)

    def status(self, remote: str | None = None) -> list[ArtifactStatus]:
        from mreg.repo.status import status

        return status(self, remote)

    def push(
        self,
        targets: list[str] | None = None,
        remote: str | None = None,
        jobs: int = 8,
        all_refs: bool = False,
        repair: bool = False,
    ) -> TransferResult:
        from mreg.repo.push import push

        with self.lock.held():
            return push(self, targets, remote=remote, jobs=jobs, all_refs=all_refs, repair=repair)

    def fetch(
        self, targets: list[str] | None = None, remote: str | None = None, jobs: int = 8
    ) -> TransferResult:
        from mreg.repo.fetch import fetch

        with self.lock.held():
            return fetch(self, targets, remote=remote, jobs=jobs)

    def pull(
        self,
        targets: list[str] | None = None,
        remote: str | None = None,
        jobs: int = 8,
        force: bool = False,
    ) -> CheckedOut:
        from mreg.repo.fetch import pull

        with self.lock.held():
            return pull(self, targets, remote=remote, jobs=jobs, force=force)

    def doctor(self) -> list[Check]:
        """What this machine and repository need, checked quickly, each with its fix."""
        from mreg.repo.doctor import doctor

        return doctor(self)

    def verify(self, targets: list[str] | None = None, remote: str | None = None) -> list[Problem]:
        from mreg.repo.verify import verify

        return verify(self, targets, remote=remote)

    def gc(
        self,
        remote: str | None = None,
        force: bool = False,
        all_commits: bool = False,
        older_than: str = "7d",
        fetch: bool = True,
    ) -> GcReport:
        from mreg.repo.gc import gc

        with self.lock.held():
            return gc(self, remote, force, all_commits, older_than=older_than, fetch=fetch)

    def du(self, remote: str | None = None) -> Usage:
        """Logical and stored bytes of every artifact's kept versions (and of ``remote``)."""
        from mreg.repo.usage import du

        return du(self, remote)

    def tag(self, name: str, version: str, message: str | None = None) -> str:
        from mreg.repo.versions import tag

        return tag(self, name, version, message)

    def log(self, name: str) -> list[LogEntry]:
        from mreg.repo.versions import log

        return log(self, name)

    def move(self, old: str | Path, new: str | Path) -> Moved:
        from mreg.repo.move import move

        with self.lock.held():
            return move(self, old, new)

    def diff(self, rev_a: str | None = None, rev_b: str | None = None) -> Diff:
        from mreg.repo.diff import diff

        return diff(self, rev_a, rev_b)

    def install_git(self, hooks: bool = False, auto_checkout: bool = False) -> Installed:
        """Make ``git diff`` show manifests through mreg; with ``hooks``, install the hooks."""
        from mreg.repo.install_git import install_git

        return install_git(self, hooks=hooks, auto_checkout=auto_checkout)

    def ls(self) -> list[Target]:
        return self.targets(None)

    def show(self, spec: str) -> Target:
        return self.target(spec)

    def open(
        self, name: str, rev: str | None = None, remote: str | None = None
    ) -> lance.LanceDataset:
        """The Lance dataset of exactly the version the manifest (at ``rev``) records.

        From the cache (what it lacks is fetched from the default remote first), or with
        ``remote="NAME"`` read in place from that remote: nothing is downloaded ahead (see
        ``mreg.repo.opening``).
        """
        from mreg.repo.opening import open_dataset

        return open_dataset(self, self.target(f"{name}@{rev}" if rev else name), remote)

    def load_state_dict(self, name: str, rev: str | None = None) -> dict[str, Any]:
        """The tensors of a model artifact as a flat dict of torch tensors."""
        import torch

        from mreg.repo import tensor_table

        target = self.target(f"{name}@{rev}" if rev else name)
        if target.manifest.kind != "model":
            raise UsageError(f"'{name}' is a dataset; use mreg.open() for its rows")
        if target.manifest.chunks:
            raise UsageError(
                f"'{name}' is opaque bytes ({target.manifest.source.format}), not tensors",
                hint=f"`mreg checkout {name}` gives the file back",
            )
        dataset = self.open(name, rev)  # checks every cache file, see Cache.check
        checked = {e.sha256 for e in target.manifest.files if self.cache.is_checked(e)}
        result = {}
        for record in tensor_table.read_tensors(dataset, target.manifest, checked_files=checked):
            if record.is_file:
                continue
            dtype = getattr(torch, record.dtype)
            if len(record.data):
                tensor = torch.frombuffer(bytearray(record.data), dtype=dtype).reshape(record.shape)
            else:
                tensor = torch.empty(record.shape, dtype=dtype)
            result[record.name] = tensor
        return result


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
