"""Commands that move data: push, fetch, pull, checkout, verify, gc."""

from __future__ import annotations

from typing import Annotated

import typer

from mreg.cli import app
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
from mreg.errors import VerificationFailed
from mreg.progress import stderr


@app.command()
def push(
    targets: Targets = None,
    remote: Remote = None,
    jobs: Jobs = 8,
    all_refs: Annotated[
        bool, typer.Option("--all", help="Also every version at a branch or tag tip.")
    ] = False,
) -> None:
    """Upload the data files the remote lacks: of the work tree's artifacts and, with no
    TARGET, of every registered or staged version too."""
    result = open_repo().push(targets, remote=remote, jobs=jobs, all_refs=all_refs)
    stdout.print(f"pushed {result.files} file(s), {human_size(result.bytes)}")
    if result.not_cached:
        stderr.print(f"{result.not_cached} file(s) of other versions are not in this cache")


@app.command()
def fetch(targets: Targets = None, remote: Remote = None, jobs: Jobs = 8) -> None:
    """Download the data files the cache lacks (each checked by sha256)."""
    result = open_repo().fetch(targets, remote=remote, jobs=jobs)
    stdout.print(f"fetched {result.files} file(s), {human_size(result.bytes)}")


@app.command()
def pull(targets: Targets = None, remote: Remote = None, jobs: Jobs = 8) -> None:
    """Fetch, then check out. NAME@REV rolls an artifact back to that version."""
    done = open_repo().pull(targets, remote=remote, jobs=jobs)
    stdout.print(f"checked out {len(done)} artifact(s)")


@app.command()
def checkout(
    targets: Targets = None,
    force: Annotated[bool, typer.Option("--force", help="Rewrite files even if in sync.")] = False,
) -> None:
    """Restore artifacts in their original format. NAME@REV rolls one back to that version."""
    done = open_repo().checkout(targets, force=force)
    for target in done:
        at = f" at {target.rev}" if target.rev else ""
        stdout.print(f"{shown(target.manifest.name)}{shown(at)} -> {shown(target.artifact_rel)}")


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
        raise VerificationFailed(f"{len(problems)} file(s) missing or corrupt")
    if not json:
        stdout.print("all files verified")


@app.command()
def gc(
    remote: Remote = None,
    force: Annotated[bool, typer.Option("--force", help="Delete; without it, only list.")] = False,
    all_commits: Annotated[
        bool, typer.Option("--all-commits", help="Keep data of every commit, not only tips.")
    ] = False,
    json: Json = False,
) -> None:
    """List (or delete with --force) data no manifest on any branch or tag references."""
    report = open_repo().gc(remote=remote, force=force, all_commits=all_commits)
    if json:
        print_json(report)
        return
    for path in report.unused:
        stdout.print(shown(path))
    verb = "deleted" if report.deleted else "unused (run with --force to delete)"
    stdout.print(
        f"{len(report.unused)} file(s), {human_size(report.bytes)} {verb} in {report.where}"
    )
