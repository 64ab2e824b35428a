"""What mreg's git hooks check (``mreg hook HOOK``, installed by ``mreg install-git --hooks``).

* ``pre-push``: every manifest in the commits being pushed must have its data on the default
  remote, or the push is refused naming the artifacts and ``mreg push``.
* ``post-checkout`` / ``post-merge``: which artifacts no longer match their manifests (and, when
  asked, restore them as ``mreg pull`` does).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import MissingData
from mreg.repo import manifest as manifests
from mreg.repo.status import status

if TYPE_CHECKING:
    from mreg.repo.status import ArtifactStatus
    from mreg.repo.work_tree import WorkTree

DELETED = "0" * 40


@dataclass(frozen=True)
class PushCheck:
    """What a pre-push check looked at; ``remote`` is None when no default remote is set."""

    remote: str | None
    commits: int
    manifests: int


def pushed_tips(lines: list[str]) -> list[str]:
    """The commits a push sends, from git's pre-push input (``LOCAL_REF LOCAL_SHA REMOTE_REF
    REMOTE_SHA`` per line) or, under the pre-commit framework, ``PRE_COMMIT_TO_REF``."""
    tips = []
    for line in lines:
        fields = line.split()
        if len(fields) == 4 and fields[1].strip("0"):  # all zeros: a branch being deleted
            tips.append(fields[1])
    if not tips and os.environ.get("PRE_COMMIT_TO_REF"):
        tips.append(os.environ["PRE_COMMIT_TO_REF"])
    return tips


def check_push(repo: WorkTree, git_remote: str, tips: list[str]) -> PushCheck:
    """MissingData when a manifest in the commits from ``tips`` that ``git_remote`` lacks
    references data the default mreg remote does not hold (same path and size)."""
    refs = repo.git.refs
    commits = sorted({sha for tip in tips for sha in refs.unpushed_commits(tip, git_remote)})
    blobs = refs.blobs_named(commits, manifests.SUFFIX) if commits else set()
    remote = repo.config.default_remote_name()
    if not blobs or remote is None:
        return PushCheck(remote, len(commits), len(blobs))
    present = repo.store(remote).list_files()
    lacking: dict[str, int] = {}
    for sha, data in repo.git.read_blobs(sorted(blobs)).items():
        manifest = manifests.loads(data.decode("utf-8"), f"blob {sha[:12]}")
        missing = [f for f in manifest.files if present.get(f.path) != f.size]
        if missing:
            lacking[manifest.name] = lacking.get(manifest.name, 0) + len(missing)
    if lacking:
        named = ", ".join(f"{name} ({count} file(s))" for name, count in sorted(lacking.items()))
        raise MissingData(
            f"push refused: the mreg remote '{remote}' lacks data these commits reference: {named}",
            hint="run `mreg push` (`mreg push --all` for versions no longer checked out), "
            "then push again; `git push --no-verify` skips this check",
        )
    return PushCheck(remote, len(commits), len(blobs))


def out_of_date(repo: WorkTree) -> list[ArtifactStatus]:
    """The artifacts whose file or folder does not match their manifest now."""
    return [s for s in status(repo) if not s.in_sync]
