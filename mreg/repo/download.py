"""Data files downloaded into the cache, each entering it only if its sha256 fits: what fetch,
pull and ``Repo.open`` share."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from mreg.errors import IntegrityError, MissingData, RemoteFileMissing
from mreg.progress import Advance
from mreg.repo.manifest import FileEntry
from mreg.storage.landing import Copy, Landing
from mreg.storage.transfer import TransferResult, run_parallel
from mreg.terminal import printable

if TYPE_CHECKING:
    from mreg.repo.targets import Target
    from mreg.repo.work_tree import WorkTree


def referenced_files(targets: list[Target]) -> list[FileEntry]:
    """Every file the targets' manifests reference, each once."""
    unique = {f.path: f for target in targets for f in target.manifest.files}
    return [unique[path] for path in sorted(unique)]


def fetch_manifests(
    repo: WorkTree,
    targets: list[Target],
    remote: str | None,
    jobs: int,
    copies: Mapping[str, Sequence[Copy]] | None = None,
) -> TransferResult:
    """Download every missing file of ``targets``; each enters the cache only if its hash fits.

    A file the remote lacks (or holds corrupt) does not stop the others: once they are in, a
    MissingData error names the artifacts that could not be fetched. ``copies``: see
    ``download_missing``.
    """
    result, failures = download_missing(repo, targets, remote, jobs, copies)
    if failures:
        raise unfetched(repo, targets, failures, repo.remote(remote).name)
    return result


def download_missing(
    repo: WorkTree,
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
    repo: WorkTree, targets: list[Target], failures: list[tuple[FileEntry, Exception]], remote: str
) -> MissingData:
    """The error naming each artifact whose data could not be fetched, with the commit that
    last changed its manifest (whose author can push the data), never only a data file."""
    lost = {entry.path: error for entry, error in failures}
    named = []
    corrupt = False
    for target in short_of(targets, set(lost)):
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


def short_of(targets: list[Target], lost: set[str]) -> list[Target]:
    """The targets with a data file among ``lost`` (paths that could not be fetched)."""
    return [t for t in targets if any(f.path in lost for f in t.manifest.files)]
