"""Commands that make git speak mreg: install-git, and what git runs (diff-textconv, hook)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from mreg.cli.options import open_repo, shown, stdout
from mreg.cli.root import app
from mreg.errors import UsageError
from mreg.progress import stderr


@app.command("install-git")
def install_git(
    hooks: Annotated[
        bool, typer.Option("--hooks", help="Also install pre-push, post-checkout, post-merge.")
    ] = False,
    auto_checkout: Annotated[
        bool,
        typer.Option("--auto-checkout", help="The checkout/merge hooks restore what is stale."),
    ] = False,
) -> None:
    """Make `git diff`, `git log -p` and `git show` print manifests as mreg reads them
    (.gitattributes and this clone's diff.mreg.textconv); harmless twice."""
    done = open_repo().install_git(hooks=hooks, auto_checkout=auto_checkout)
    stdout.print(f"git diff shows *.mreg.toml through mreg (commit {done.attributes})")
    if done.hooks:
        stdout.print(f"hooks installed: {', '.join(done.hooks)}")
    for hook in done.chained:
        stdout.print(f"kept your {hook} hook as {hook}.pre-mreg: it runs first")


@app.command("diff-textconv", hidden=True)
def diff_textconv(path: Annotated[Path, typer.Argument(help="A manifest file.")]) -> None:
    """What git's diff.mreg.textconv runs: one manifest as review text (no repository needed)."""
    from mreg.repo.textconv import textconv

    sys.stdout.write(textconv(path))


@app.command(hidden=True)
def hook(
    name: Annotated[str, typer.Argument(help="pre-push, post-checkout or post-merge.")],
    args: Annotated[list[str] | None, typer.Argument(help="What git passes the hook.")] = None,
    auto_checkout: Annotated[bool, typer.Option("--auto-checkout")] = False,
) -> None:
    """What mreg's git hooks run (see `mreg install-git --hooks`)."""
    from mreg.repo import Repo
    from mreg.repo.git import find_work_tree
    from mreg.repo.hooks import check_push, out_of_date, pushed_tips

    root = find_work_tree(Path.cwd())
    if not (root / ".mreg" / "config.toml").exists():
        return  # mreg is not set up in this clone: nothing to check
    repo = Repo(root)
    if name == "pre-push":
        git_remote = (args or ["origin"])[0]
        # Under the pre-commit framework the refs come in PRE_COMMIT_* variables, not stdin.
        lines = [] if os.environ.get("PRE_COMMIT_TO_REF") else sys.stdin.read().splitlines()
        checked = check_push(repo, git_remote, pushed_tips(lines))
        if checked.remote is None and checked.manifests:
            stderr.print("mreg: no default remote, so the pushed manifests' data were not checked")
        return
    if name not in ("post-checkout", "post-merge"):
        raise UsageError(f"no mreg hook named '{name}'", hint="pre-push, post-checkout, post-merge")
    stale = out_of_date(repo)
    if not stale:
        return
    listed = ", ".join(f"{s.name} ({', '.join(s.states)})" for s in stale)
    if not auto_checkout:
        stderr.print(f"mreg: out of date: {shown(listed)}; run `mreg pull` to restore them")
        return
    restored = repo.pull([s.name for s in stale])
    stderr.print(f"mreg: restored {len(restored)} artifact(s): {shown(listed)}")


@app.command()
def reproduce(
    spec: Annotated[str, typer.Argument(help="The registered version, NAME@vX.Y.Z.")],
    check: Annotated[
        bool,
        typer.Option("--check", help="Only check that the code commit and data are there."),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", help="Run the recorded command (read it first).")
    ] = False,
    tolerance: Annotated[
        float, typer.Option("--tolerance", help="Largest metric difference accepted.")
    ] = 0.0,
    remote: Annotated[str | None, typer.Option("--remote", "-r", help="Remote name.")] = None,
) -> None:
    """Show a registered version's lineage; --check verifies its inputs; --yes runs its
    recorded command at its code commit in a temporary clone and compares the model (exact
    tensor digests, else metrics within --tolerance): exit 0 when it matches, 1 when not."""
    from mreg.registry.lineage import check_inputs, lineage_of

    repo = open_repo()
    found = lineage_of(repo, spec)
    stdout.print(f"code commit {found.code_commit}")
    for version in found.data:
        stdout.print(f"data {shown(version)}")
    stdout.print(f"seed {found.seed if found.seed is not None else '(not recorded)'}")
    # The command comes from a clone: shown, and run only with --yes.
    stdout.print(f"command {shown(found.command or '(not recorded)')}")
    if check:
        check_inputs(repo, found, remote)
        stdout.print(f"{shown(spec)}: the code commit and every data version are available")
        return
    if not yes:
        raise UsageError(
            "the recorded command comes from the repository: read it above, then pass --yes "
            "to run it",
            hint=f"`mreg reproduce {spec} --check` only checks its inputs",
        )
    from mreg.registry.reproduce import reproduce as run_again

    result = run_again(repo, spec, tolerance, remote)
    if result.identical:
        stdout.print(f"{shown(spec)}: reproduced, all {result.tensors} tensor digests equal")
        return
    stdout.print(f"{len(result.differing)} of {result.tensors} tensor(s) differ")
    for name, (old, new) in result.metrics.items():
        stdout.print(f"metric {shown(name)}: {old:g} registered, {new:g} now")
    if not result.ok:
        raise typer.Exit(1)
    stdout.print(f"{shown(spec)}: metrics within {tolerance:g}")
