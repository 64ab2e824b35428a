"""``mreg install-git``: make git itself speak mreg in this clone.

* ``.gitattributes`` gets ``*.mreg.toml diff=mreg`` (commit it: every clone then asks for the
  driver), and this clone's ``.git/config`` gets ``diff.mreg.textconv``, so ``git diff``,
  ``git log -p`` and ``git show`` print each manifest as ``mreg.repo.textconv`` describes it.
  A clone where the setting is missing, or where mreg is not installed, shows plain TOML: the
  command falls back to ``cat``.
* ``--hooks`` installs ``pre-push``, ``post-checkout`` and ``post-merge`` hooks that run
  ``mreg hook ...`` (``mreg.repo.hooks``). A hook that was there already is kept as
  ``HOOK.pre-mreg`` and runs first; its failure stops the push as before.

Everything is idempotent: running it again changes nothing, or only the hooks' options.
"""

from __future__ import annotations

import os
import shlex
import stat
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from mreg.atomic import atomic_write_text
from mreg.errors import UsageError

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree

ATTRIBUTES = ".gitattributes"
ATTRIBUTES_LINE = "*.mreg.toml diff=mreg"
TEXTCONV_KEY = "diff.mreg.textconv"
HOOKS = ("pre-push", "post-checkout", "post-merge")
MARKER = "# mreg-hook: written by `mreg install-git --hooks`"
CHAINED = ".pre-mreg"


@dataclass(frozen=True)
class Installed:
    """What ``install_git`` set up, and which earlier hooks it chained."""

    attributes: str
    textconv: str
    hooks: tuple[str, ...] = ()
    chained: tuple[str, ...] = field(default_factory=tuple)


def mreg_command() -> str:
    """How git runs this mreg from any folder: this interpreter, ``-m mreg``."""
    return f"{shlex.quote(sys.executable)} -m mreg"


def textconv_command() -> str:
    """The ``diff.mreg.textconv`` value: mreg's description, or the file as it is when mreg
    cannot run (uninstalled, moved virtual environment), so ``git diff`` never breaks."""
    return f'f() {{ {mreg_command()} diff-textconv "$1" 2>/dev/null || cat "$1"; }}; f'


def install_git(repo: WorkTree, hooks: bool = False, auto_checkout: bool = False) -> Installed:
    """Write the attributes line and the textconv setting; with ``hooks``, the hooks too."""
    write_attributes(repo.root)
    command = textconv_command()
    if repo.git.config_value(TEXTCONV_KEY) != command:
        repo.git.set_config(TEXTCONV_KEY, command)
    if not hooks:
        if auto_checkout:
            raise UsageError("--auto-checkout is an option of the hooks", hint="add --hooks")
        return Installed(ATTRIBUTES, command)
    folder = repo.git.hooks_dir()
    folder.mkdir(parents=True, exist_ok=True)
    chained = [hook for hook in HOOKS if _install_hook(folder / hook, auto_checkout)]
    return Installed(ATTRIBUTES, command, HOOKS, tuple(chained))


def write_attributes(root: Path) -> None:
    """Add ``*.mreg.toml diff=mreg`` to the root's ``.gitattributes`` unless it is there."""
    path = root / ATTRIBUTES
    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    if ATTRIBUTES_LINE in text.splitlines():
        return
    separator = "" if not text or text.endswith("\n") else "\n"
    atomic_write_text(path, f"{text}{separator}{ATTRIBUTES_LINE}\n")


def _install_hook(path: Path, auto_checkout: bool) -> bool:
    """Write mreg's hook at ``path``; True when a hook of someone else's was kept to chain."""
    chained = False
    if path.exists() and not _is_ours(path):
        kept = path.with_name(path.name + CHAINED)
        if kept.exists():
            raise UsageError(
                f"{path} is not mreg's hook, and {kept.name} exists already: "
                "mreg will not overwrite either",
                hint=f"merge them into {kept.name}, remove {path.name}, and run it again",
            )
        os.rename(path, kept)
        chained = True
    atomic_write_text(path, _script(path.name, auto_checkout))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return chained


def _is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False


def _script(hook: str, auto_checkout: bool) -> str:
    """A POSIX shell hook: the earlier hook first (same arguments, same input), then mreg."""
    option = " --auto-checkout" if auto_checkout and hook != "pre-push" else ""
    python = shlex.quote(sys.executable)
    reads_input = hook == "pre-push"  # git gives pre-push the refs on stdin, others nothing
    feed = 'if [ -n "$input" ]; then printf "%s\\n" "$input"; fi | ' if reads_input else ""
    return "\n".join(
        [
            "#!/bin/sh",
            MARKER,
            f"# The hook that was here before is kept as {hook}{CHAINED} and runs first.",
            "input=$(cat)" if reads_input else "",
            f'if [ -x "$0{CHAINED}" ]; then',
            f'    {feed}"$0{CHAINED}" "$@" || exit $?',
            "fi",
            f"if ! [ -x {python} ]; then",
            f'    echo "mreg: {python} is gone, the mreg {hook} check did not run '
            '(run mreg install-git --hooks again)" >&2',
            "    exit 0",
            "fi",
            f'{feed}{python} -m mreg hook {hook}{option} "$@"',
            "",
        ]
    )
