"""Commands that move data: push, fetch, pull, checkout, verify, gc."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from mreg.cli.options import (
    Jobs,
    Json,
    Remote,
    Targets,
    human_size,
    open_repo,
    print_json,
    shown,
    stdout,
)
from mreg.cli.root import app
from mreg.errors import VerificationFailed
from mreg.progress import stderr

if TYPE_CHECKING:
    from mreg.repo.checkout import CheckedOut


@app.command()
def push(
    targets: Targets = None,
    remote: Remote = None,
    jobs: Jobs = 8,
    all_refs: Annotated[
        bool, typer.Option("--all", help="Also every version at a branch or tag tip.")
    ] = False,
    repair: Annotated[
        bool,
        typer.Option("--repair", help="Re-hash the remote's copies; upload corrupt ones again."),
    ] = False,
) -> None:
    """Upload the data files the remote lacks: of the work tree's artifacts and, with no
    TARGET, of every registered or staged version too."""
    result = open_repo().push(targets, remote=remote, jobs=jobs, all_refs=all_refs, repair=repair)
    stdout.print(
        f"pushed {result.files} file(s), {human_size(result.bytes)} new; "
        f"{human_size(result.reused_bytes)} reused ({result.reused_files} file(s) the remote "
        "had already)"
    )
    if result.not_cached:
        stderr.print(f"{result.not_cached} file(s) of other versions are not in this cache")


@app.command()
def fetch(targets: Targets = None, remote: Remote = None, jobs: Jobs = 8) -> None:
    """Download the data files the cache lacks (each checked by sha256).

    Keeps going: a file missing or corrupt on the remote does not stop the others; the command
    then fails naming each artifact it could not fetch."""
    result = open_repo().fetch(targets, remote=remote, jobs=jobs)
    stdout.print(f"fetched {result.files} file(s), {human_size(result.bytes)}")


Force = Annotated[
    bool,
    typer.Option("--force", help="Rewrite files even if in sync, and overwrite changes."),
]


@app.command()
def pull(
    targets: Targets = None, remote: Remote = None, jobs: Jobs = 8, force: Force = False
) -> None:
    """Fetch, then check out. NAME@REV rolls an artifact back to that version.

    Keeps going: an artifact whose data the remote lacks (or holds corrupt) does not stop the
    others, which are fetched and checked out; the command then fails naming it and the commit
    that last changed its manifest.

    With --server URL (or MREG_SERVER_URL), no clone is needed: each TARGET's file is
    downloaded from that server into the current folder, its sha256 checked."""
    if os.environ.get("MREG_SERVER_URL") and targets:
        from mreg.client import Client

        client = Client(os.environ["MREG_SERVER_URL"])
        for target in targets:
            stdout.print(f"{target} -> {shown(str(client.download(target, Path('.'))))}")
        return
    done = open_repo().pull(targets, remote=remote, jobs=jobs, force=force)
    stdout.print(f"checked out {len(done)} artifact(s)")
    _report_leftovers(done)


@app.command()
def checkout(targets: Targets = None, force: Force = False) -> None:
    """Restore artifacts in their original format. NAME@REV rolls one back to that version."""
    done = open_repo().checkout(targets, force=force)
    for target in done:
        at = f" at {target.rev}" if target.rev else ""
        stdout.print(f"{shown(target.manifest.name)}{shown(at)} -> {shown(target.artifact_rel)}")
    _report_leftovers(done)


def _report_leftovers(done: CheckedOut) -> None:
    for path in done.removed:
        stdout.print(
            f"removed {shown(path)}: no manifest tracks it here (its data stay in the cache)"
        )
    for path in done.kept:
        stderr.print(
            f"warning: kept {shown(path)}: no manifest tracks it here and mreg does not hold "
            "its bytes; `mreg add` it or delete it before `git add`",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


@app.command()
def verify(targets: Targets = None, remote: Remote = None, json: Json = False) -> None:
    """Re-hash what the manifests reference, in the cache (and on a remote)."""
    problems = open_repo().verify(targets, remote=remote)
    if json:
        print_json(problems)
    else:
        for problem in problems:
            stdout.print(shown(problem))
    if problems:
        on_remote = any(problem.where != "cache" for problem in problems)
        raise VerificationFailed(
            f"{len(problems)} file(s) missing or corrupt",
            hint="`mreg push --repair` from a clone whose cache holds good copies"
            if on_remote
            else "delete the named files from .mreg/cache, then `mreg fetch` them again",
        )
    if not json:
        stdout.print("all files verified")


_GC_HELP = (
    "List (or delete with --force) data that no manifest references.\n\n"
    "Kept: the manifests in every work tree (`git worktree list`) and its index, and at every "
    "commit that HEAD, any ref under refs/ (branches, remote-tracking branches, tags, "
    "refs/stash, refs/notes, ...) or any reflog entry points at, with each stash entry's index "
    "(--all-commits: every commit reachable from those).\n\n"
    "A remote gc first fetches every ref of every git remote (branches, tags, pull requests), "
    "without moving local refs, and counts them too; it never deletes an object younger than "
    "--older-than. It cannot know a commit that was never pushed to a git remote: its data "
    "survive only the grace period."
)


@app.command(help=_GC_HELP)
def gc(
    remote: Remote = None,
    force: Annotated[bool, typer.Option("--force", help="Delete; without it, only list.")] = False,
    all_commits: Annotated[
        bool, typer.Option("--all-commits", help="Keep data of every commit, not only tips.")
    ] = False,
    older_than: Annotated[
        str,
        typer.Option(
            help="Remote only: never delete an object younger than this (30m, 12h, 7d, 0s): "
            "`mreg push` uploads data before the `git push` that references it."
        ),
    ] = "7d",
    no_fetch: Annotated[
        bool,
        typer.Option(
            "--no-fetch",
            help="Remote only: do not fetch the refs of the git remotes first (when one cannot "
            "be reached); a teammate's unfetched work then keeps only --older-than.",
        ),
    ] = False,
    json: Json = False,
) -> None:
    """List (or delete) unreferenced data of the cache or a remote (what counts: _GC_HELP)."""
    report = open_repo().gc(
        remote=remote,
        force=force,
        all_commits=all_commits,
        older_than=older_than,
        fetch=not no_fetch,
    )
    if json:
        print_json(report)
        return
    for path in report.unused:
        stdout.print(shown(path))
    verb = "deleted" if report.deleted else "unused (run with --force to delete)"
    stdout.print(
        f"{len(report.unused)} file(s), {human_size(report.bytes)} {verb} in {report.where}"
    )
    if report.too_young:
        stderr.print(f"{len(report.too_young)} unreferenced file(s) younger than {older_than} kept")
