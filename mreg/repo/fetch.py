"""``mreg fetch``: download what the cache lacks, checked by sha256."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.repo.download import fetch_manifests
from mreg.repo.targets import resolve_all

if TYPE_CHECKING:
    from mreg.repo.work_tree import WorkTree
    from mreg.storage.transfer import TransferResult


def fetch(repo: WorkTree, specs: list[str] | None, remote: str | None, jobs: int) -> TransferResult:
    return fetch_manifests(repo, resolve_all(repo, specs), remote, jobs)
