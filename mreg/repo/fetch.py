"""``mreg fetch`` and ``mreg pull``: download what the cache lacks, checked by sha256."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mreg.errors import IntegrityError, MissingData, RemoteFileMissing
from mreg.progress import Advance
from mreg.repo.manifest import FileEntry
from mreg.repo.push import referenced_files
from mreg.storage.landing import Copy, Landing
from mreg.storage.transfer import TransferResult, run_parallel
from mreg.terminal import printable

if TYPE_CHECKING:
    from mreg.repo import Repo, Target
    from mreg.repo.checkout import CheckedOut


def fetch(repo: Repo, specs: list[str] | None, remote: str | None, jobs: int) -> TransferResult:
    return fetch_manifests(repo, repo.targets(specs), remote, jobs)


def fetch_manifests(
    repo: Repo,
    targets: list[Target],
    remote: str | None,
    jobs: int,
    copies: Mapping[str, Sequence[Copy]] | None = None,
) -> TransferResult:
    """Download every missing file of ``targets``; each enters the cache only if its hash fits.

    A file the remote lacks (or holds corrupt) does not stop the others: once they are in, a
    MissingData error names the artifacts that could not be fetched. ``copies``: see
    ``_download``.
    """
    result, failures = _download(repo, targets, remote, jobs, copies)
    if failures:
        raise unfetched(repo, targets, failures, repo.remote(remote).name)
    return result


def _download(
    repo: Repo,
    targets: list[Target],
    remote: str | None,
    jobs: int,
    copies: Mapping[str, Sequence[Copy]] | None = None,
) -> tuple[TransferResult, list[tuple[FileEntry, Exception]]]:
    """Download every missing file of ``targets``, keeping going past files the remote lacks
    or holds corrupt (returned with their errors); any other error stops the transfer.

    ``copies``: by cache path, where else a file's bytes go as they arrive (the work-tree files
    a pull is restoring); each copy is marked ``landed`` once its file is checked and cached.
    """
    todo = repo.cache.missing(referenced_files(targets))
    if not todo:
        return TransferResult(0, 0), []
    store = repo.store(remote, jobs=jobs)
    copies = copies or {}
    repo.cache.scratch()  # downloads a killed fetch left go

    def download(entry: FileEntry, advance: Advance) -> None:
        temporary = repo.cache.temp_file()
        try:
            with Landing(temporary, entry.size, copies.get(entry.path, ())) as landing:
                digest = store.download(entry.path, landing, advance)
            repo.cache.receive(entry, temporary, digest)
        finally:
            temporary.unlink(missing_ok=True)
        for copy in copies.get(entry.path, ()):
            copy.landed = True

    total = sum(e.size for e in todo)
    with repo.state.batch():
        failures = run_parallel(
            todo,
            download,
            f"fetch from {repo.remote(remote).name}",
            total,
            jobs,
            keep_going=(RemoteFileMissing, IntegrityError),
        )
    done = [e for e in todo if e not in {entry for entry, _ in failures}]
    return TransferResult(len(done), sum(e.size for e in done)), failures


def unfetched(
    repo: Repo, targets: list[Target], failures: list[tuple[FileEntry, Exception]], remote: str
) -> MissingData:
    """The error naming each artifact whose data could not be fetched, with the commit that
    last changed its manifest (whose author can push the data), never only a data file."""
    lost = {entry.path: error for entry, error in failures}
    named = []
    corrupt = False
    for target in _hit(targets, set(lost)):
        files = [
            f"{f.path} " + ("corrupt: sha256 mismatch" if _corrupt(lost[f.path]) else "missing")
            for f in target.manifest.files
            if f.path in lost
        ]
        corrupt |= any(_corrupt(lost[f.path]) for f in target.manifest.files if f.path in lost)
        change = repo.git.last_change(target.manifest_rel, target.rev or "HEAD")
        origin = (
            f'manifest from commit {change.sha[:7]} "{change.subject}" by {change.author}'
            if change
            else "manifest not committed"
        )
        shown = ", ".join(files[:3]) + (f" and {len(files) - 3} more" if len(files) > 3 else "")
        named.append(
            printable(f"'{target.manifest.name}' ({target.artifact_rel}, {origin}: {shown})")
        )
    what = "missing or corrupt on" if corrupt else "missing on"
    return MissingData(
        f"{len(named)} artifact(s) have data {what} remote '{remote}': {'; '.join(named)}; "
        "everything else was fetched",
        hint="`mreg push` from a clone that has their data (the author of that commit), "
        + ("`mreg push --repair` for corrupt copies, " if corrupt else "")
        + "then run this command again",
    )


def _corrupt(error: Exception) -> bool:
    return isinstance(error, IntegrityError)


def _hit(targets: list[Target], lost: set[str]) -> list[Target]:
    return [t for t in targets if any(f.path in lost for f in t.manifest.files)]


def pull(
    repo: Repo, specs: list[str] | None, remote: str | None, jobs: int, force: bool = False
) -> CheckedOut:
    """Fetch, then check out, the named artifacts (``NAME@REV`` rolls back as checkout does).

    Without ``force``, work in the work tree that mreg does not hold is refused before anything
    is downloaded. Restorations open before the fetch, so the tensors a model's format places
    up front land in the restored file as they download, instead of being copied out of the
    cache after.
    """
    from mreg.repo.checkout import Restoration, checkout_targets, refuse_unheld_changes

    targets = repo.targets(specs)
    if not force:
        refuse_unheld_changes(repo, [(t.artifact_rel, t.manifest) for t in targets], "pull")
    with contextlib.ExitStack() as stack:
        started = {
            target.manifest_rel: stack.enter_context(
                Restoration(repo, target.manifest_rel, target.manifest)
            )
            for target in targets
            if not repo.workspace_in_sync(target.artifact_rel, target.manifest)
        }
        copies: dict[str, list[Copy]] = {}
        for restoration in started.values():
            for path, more in restoration.copies().items():
                copies.setdefault(path, []).extend(more)
        _, failures = _download(repo, targets, remote, jobs, copies)
        hit = _hit(targets, {entry.path for entry, _ in failures})
        fetched = [t for t in targets if t not in hit]
        # With an artifact missing, leftovers stay: the next whole pull removes them.
        everything = not specs and not hit
        done = checkout_targets(repo, fetched, force, started, everything, command="pull")
    if failures:
        raise unfetched(repo, targets, failures, repo.remote(remote).name)
    return done
