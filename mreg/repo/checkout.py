"""``mreg checkout``: give artifacts back in their original format from the cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.repo.restoration import CheckedOut, restore_targets
from mreg.repo.targets import resolve_all

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree


def checkout(repo: WorkTree, specs: list[str] | None, force: bool = False) -> CheckedOut:
    """Restore the named artifacts (all when none is named); ``NAME@REV`` rolls one back.

    Every target is checked before anything is written (missing data; without ``force``, work
    that mreg does not hold and would overwrite), so a checkout that cannot complete changes
    nothing. A checkout of every artifact also removes the files of artifacts no longer tracked
    (see ``remove_leftovers``).
    """
    targets = resolve_all(repo, specs)
    return restore_targets(repo, targets, force, everything=not specs)
