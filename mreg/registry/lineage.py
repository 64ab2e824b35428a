"""A registered version's lineage: what reproduces it.

Recorded at registration in ``[meta]`` under ``lineage.*`` (strings, readable in a diff):
``code_commit`` (HEAD when registering, kept where it always was), ``lineage.data`` (a JSON
list of ``NAME@vX.Y.Z`` dataset versions, the training dataset's first), ``lineage.command``
(the command line that trained it, when known), ``lineage.seed``, and the versions of Python,
torch (when loaded) and mreg.
"""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mreg.errors import ArtifactNotFound, GitError, MissingData, RegistryError, UsageError
from mreg.repo import Repo

PREFIX = "lineage."
DATA = "lineage.data"
COMMAND = "lineage.command"
SEED = "lineage.seed"
# Keyword arguments of register_model that are lineage, not free metadata.
ARGUMENTS = ("command", "seed", "data_versions")


def record(metadata: dict[str, Any], training_version: str | None) -> dict[str, str]:
    """The ``lineage.*`` fields, taking ``command``, ``seed`` and ``data_versions`` out of the
    caller's ``metadata``. The command defaults to this process's when it is ``mreg ...``."""
    found: dict[str, str] = {}
    versions = [str(v) for v in metadata.pop("data_versions", None) or []]
    if training_version and training_version not in versions:
        versions.insert(0, training_version)
    if versions:
        found[DATA] = json.dumps(versions)
    command = metadata.pop("command", None) or _this_command()
    if command:
        found[COMMAND] = command if isinstance(command, str) else shlex.join(command)
    seed = metadata.pop("seed", None)
    if seed is not None:
        found[SEED] = str(int(seed))
    found[f"{PREFIX}python"] = "{}.{}.{}".format(*sys.version_info[:3])
    if "torch" in sys.modules:  # never imported just to say which version it would be
        found[f"{PREFIX}torch"] = str(sys.modules["torch"].__version__)
    from mreg import __version__

    found[f"{PREFIX}mreg"] = __version__
    return found


def _this_command() -> str | None:
    argv = sys.argv
    if argv and Path(argv[0]).name == "mreg":
        return shlex.join(["mreg", *argv[1:]])
    return None


@dataclass(frozen=True)
class Lineage:
    """What a registered version says reproduces it."""

    model: str
    code_commit: str
    data: tuple[str, ...]
    command: str | None
    seed: int | None


def lineage_of(repo: Repo, spec: str) -> Lineage:
    """The lineage ``NAME@vX.Y.Z`` records; RegistryError when it records no code commit."""
    if "@" not in spec:
        raise UsageError(f"'{spec}' names no version", hint="give NAME@vX.Y.Z")
    meta = repo.target(spec).manifest.meta
    commit = meta.get("code_commit")
    if not commit:
        raise RegistryError(f"{spec} records no code commit: it cannot be reproduced")
    try:
        data = tuple(str(v) for v in json.loads(meta.get(DATA, "[]")))
    except ValueError:
        raise RegistryError(f"{spec}: {DATA} is not a JSON list") from None
    seed = meta.get(SEED)
    return Lineage(
        spec, commit, data, meta.get(COMMAND), int(seed) if seed and seed.isdigit() else None
    )


def check_inputs(repo: Repo, lineage: Lineage, remote: str | None = None) -> None:
    """Everything a reproduction needs before it runs anything: the code commit in this clone,
    every data version known here and whole on the remote. Raises the first problem found."""
    try:
        repo.git.resolve(lineage.code_commit)
    except GitError:
        raise GitError(
            f"{lineage.model} was trained at commit {lineage.code_commit[:12]}, "
            "which this clone does not have",
            hint="`git fetch` the branch that holds it",
        ) from None
    present = repo.store(remote).list_files()
    for version in lineage.data:
        try:
            target = repo.target(version)
        except (ArtifactNotFound, GitError):
            raise MissingData(
                f"{lineage.model} was trained on {version}, which this clone does not know",
                hint="`git fetch --tags`",
            ) from None
        missing = [f for f in target.manifest.files if present.get(f.path) != f.size]
        if missing:
            raise MissingData(
                f"{lineage.model} was trained on {version}, but the remote "
                f"'{repo.remote(remote).name}' lacks {len(missing)} of its data file(s); "
                "nothing was run",
                hint=f"`mreg push {version}` from a clone whose cache holds it",
            )
