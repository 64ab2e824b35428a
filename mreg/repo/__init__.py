"""``Repo``: one git work tree under mreg, and every operation on it.

Each verb lives in its own module (``add.py``, ``push.py``, ...); ``Repo`` delegates in one line so
that Python users and the CLI call the same functions with the same names. What a ``Repo`` is made
of (its folders, config, git, state, cache and lock) is ``WorkTree`` (``work_tree.py``), which the
verbs take; which artifact a spec means is ``targets.py``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from mreg.repo import targets as resolution
from mreg.repo.targets import Specs, Target
from mreg.repo.work_tree import WorkTree

if TYPE_CHECKING:
    import lance

    from mreg.repo.add import AddResult, Engine, Mode
    from mreg.repo.diff import Diff
    from mreg.repo.doctor import Check
    from mreg.repo.gc import GcReport
    from mreg.repo.history import LogEntry
    from mreg.repo.install_git import Installed
    from mreg.repo.manifest import Manifest
    from mreg.repo.move import Moved
    from mreg.repo.remote_check import Problem
    from mreg.repo.restoration import CheckedOut
    from mreg.repo.status import ArtifactStatus
    from mreg.repo.usage import Usage
    from mreg.storage.transfer import TransferResult

__all__ = ["Repo", "Target", "WorkTree"]


class Repo(WorkTree):
    """A git work tree in which ``mreg init`` ran (see ``WorkTree``), and every verb on it."""

    def target(self, spec: str) -> Target:
        """Resolve ``NAME``, ``NAME@VERSION``, ``NAME@REV`` or a path to one artifact."""
        return resolution.resolve(self, spec)

    def targets(self, specs: list[str] | tuple[str, ...] | None) -> list[Target]:
        """The named artifacts, or every artifact in the work tree when none is named."""
        return resolution.resolve_all(self, specs)

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
        from mreg.repo.restoration import restore

        return restore(self, manifest_rel, manifest, force=force)

    def checkout(self, targets: Specs = None, force: bool = False) -> CheckedOut:
        from mreg.repo.checkout import checkout

        with self.lock.held():
            return checkout(self, targets, force=force)

    def status(self, remote: str | None = None) -> list[ArtifactStatus]:
        from mreg.repo.status import status

        return status(self, remote)

    def push(
        self,
        targets: Specs = None,
        remote: str | None = None,
        jobs: int = 8,
        all_refs: bool = False,
        repair: bool = False,
    ) -> TransferResult:
        from mreg.repo.push import push

        with self.lock.held():
            return push(self, targets, remote=remote, jobs=jobs, all_refs=all_refs, repair=repair)

    def fetch(
        self, targets: Specs = None, remote: str | None = None, jobs: int = 8
    ) -> TransferResult:
        from mreg.repo.fetch import fetch

        with self.lock.held():
            return fetch(self, targets, remote=remote, jobs=jobs)

    def pull(
        self, targets: Specs = None, remote: str | None = None, jobs: int = 8, force: bool = False
    ) -> CheckedOut:
        from mreg.repo.pull import pull

        with self.lock.held():
            return pull(self, targets, remote=remote, jobs=jobs, force=force)

    def doctor(self) -> list[Check]:
        """What this machine and repository need, checked quickly, each with its fix."""
        from mreg.repo.doctor import doctor

        return doctor(self)

    def verify(self, targets: Specs = None, remote: str | None = None) -> list[Problem]:
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
        from mreg.repo.history import tag

        return tag(self, name, version, message)

    def log(self, name: str) -> list[LogEntry]:
        from mreg.repo.history import log

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
        """The Lance dataset of the version the manifest records (see ``mreg.repo.opening``)."""
        from mreg.repo.opening import open_dataset

        return open_dataset(self, self.target(f"{name}@{rev}" if rev else name), remote)

    def load_state_dict(self, name: str, rev: str | None = None) -> dict[str, Any]:
        """The tensors of a model artifact as a flat dict of torch tensors."""
        from mreg.repo.opening import load_state_dict

        return load_state_dict(self, self.target(f"{name}@{rev}" if rev else name))
