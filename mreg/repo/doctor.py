"""``mreg doctor``: what a command needs from this machine, each check with its fix.

Quick by design: remotes get one request with a short timeout, and the cache is checked by
sizes only (``mreg verify`` re-hashes).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mreg.errors import MregError

if TYPE_CHECKING:
    from mreg.config import RemoteConfig
    from mreg.repo.work_tree import WorkTree

# Optional packages: (module, the extra that installs it, formats that need it to restore).
EXTRAS = (
    ("torch", "torch", ("pth",)),
    ("PIL", "images", ("images",)),
    ("onnx", "onnx", ("onnx",)),
    ("transformers", "huggingface", ()),
    ("datasets", "huggingface", ("hf_dataset",)),
)
PROBE_TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    """One thing checked: ``ok``, what was found, and what to do when it is not ok."""

    name: str
    ok: bool
    detail: str
    fix: str | None = None


def doctor(repo: WorkTree) -> list[Check]:
    """Every check, in a fixed order: git identity, remotes, credentials, cache, extras."""
    return [
        _identity(repo),
        *_remotes(repo),
        _cache(repo),
        *_extras(repo),
    ]


def _identity(repo: WorkTree) -> Check:
    found = repo.git.identity()
    if found:
        return Check("git identity", True, found)
    return Check(
        "git identity",
        False,
        "git has no user name and email: `mreg register` and `mreg tag` cannot commit or tag",
        'git config --global user.name "Your Name" && '
        "git config --global user.email you@example.com",
    )


def _remotes(repo: WorkTree) -> list[Check]:
    from mreg.storage import probe

    config = repo.config
    try:
        remotes = config.remotes()
    except MregError as error:
        return [Check("remotes", False, error.message, error.hint)]
    if not remotes:
        return [Check("remotes", True, "none configured (`mreg remote add NAME URL --default`)")]
    checks = []
    for name in remotes:
        label = f"remote '{name}'"
        try:
            remote = config.remote(name)
            if remote.is_s3:
                checks.append(_credentials(remote))
            probe(remote, repo.root, PROBE_TIMEOUT)
        except MregError as error:
            checks.append(Check(label, False, error.message, error.hint))
            continue
        checks.append(Check(label, True, f"reachable ({remote.url})"))
    return checks


def _credentials(remote: RemoteConfig) -> Check:
    from mreg.storage.s3 import credentials_source

    label = f"remote '{remote.name}' credentials"
    source = credentials_source(remote)
    if source:
        return Check(label, True, f"found ({source})")
    return Check(
        label,
        False,
        "no credentials found",
        f"`mreg remote modify {remote.name} --access-key-id K --secret-access-key S` (kept in "
        "git-ignored .mreg/config.local.toml), AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or "
        "AWS_PROFILE",
    )


def _cache(repo: WorkTree) -> Check:
    wrong = []
    entries = {e.path: e for m in repo.manifests().values() for e in m.files}
    for relpath, entry in sorted(entries.items()):
        try:
            size = repo.cache.path(relpath).stat().st_size
        except FileNotFoundError:
            continue  # not fetched yet: `mreg fetch` brings it, nothing is wrong
        if size != entry.size:
            wrong.append(f"{relpath} ({size} bytes, manifest {entry.size})")
    if not wrong:
        return Check("cache", True, f"{len(entries)} file(s) referenced, sizes consistent")
    return Check(
        "cache",
        False,
        f"{len(wrong)} cache file(s) of the wrong size: {', '.join(wrong[:3])}"
        + (" ..." if len(wrong) > 3 else ""),
        "delete them from .mreg/cache, then `mreg fetch` (or `mreg verify` to see every file)",
    )


def _extras(repo: WorkTree) -> list[Check]:
    formats = {m.source.format for m in repo.manifests().values()}
    checks = []
    for module, extra, needed_by in EXTRAS:
        if importlib.util.find_spec(module) is not None:
            checks.append(Check(f"extra {module}", True, "installed"))
            continue
        needing = sorted(formats.intersection(needed_by))
        detail = "not installed" + (
            f": artifacts of format {', '.join(needing)} need it" if needing else " (optional)"
        )
        checks.append(Check(f"extra {module}", not needing, detail, f'pip install "mreg[{extra}]"'))
    return checks
