"""``mreg reproduce NAME@vX.Y.Z --yes``: run a registered version's recorded command again, at
its code commit, on its data versions, and compare the model it writes with the registered one.

The command is input from the repository (anyone who can push wrote it), so it runs only when
the user passes ``--yes`` after reading it. It runs in a temporary clone of this repository
(``git clone --shared``, checked out at the code commit): tags and commits the command makes
(a training script that registers its model) stay there, and the clone is deleted afterwards.
The inputs are checked first (``lineage.check_inputs``), so a missing data version fails before
anything runs. The new model's tensors are compared by digest; when any differs, the recorded
metrics (``metric.*``) of a version the command registered there are compared within
``tolerance``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from mreg.errors import RegistryError, UsageError
from mreg.registry.lineage import check_inputs, lineage_of
from mreg.repo import Repo
from mreg.repo.manifest import Manifest

ENV = "MREG_REPRODUCE"  # set for the command: a training script can skip pushes, uploads...


@dataclass(frozen=True)
class Reproduction:
    """How the new model compares with the registered one."""

    spec: str
    command: str
    identical: bool
    tensors: int
    differing: tuple[str, ...] = ()
    metrics: dict[str, tuple[float, float]] = field(default_factory=dict)
    within_tolerance: bool = False

    @property
    def ok(self) -> bool:
        return self.identical or self.within_tolerance


def reproduce(
    repo: Repo, spec: str, tolerance: float = 0.0, remote: str | None = None
) -> Reproduction:
    """Check the inputs, run the command in a temporary clone, compare; see the module text."""
    lineage = lineage_of(repo, spec)
    if not lineage.command:
        raise RegistryError(f"{spec} records no command", hint="register with command=[...]")
    check_inputs(repo, lineage, remote)
    registered = repo.target(spec)
    with tempfile.TemporaryDirectory(prefix="mreg-reproduce-") as scratch:
        clone = Path(scratch) / "clone"
        _clone_at(repo, clone, lineage.code_commit)
        if lineage.data:
            _mreg(clone, "pull", *(["--remote", remote] if remote else []), *lineage.data)
        _run(clone, lineage.command)
        artifact = clone / registered.artifact_rel
        if not artifact.exists():
            raise RegistryError(
                f"the command wrote no {registered.artifact_rel}, the model {spec} names"
            )
        fresh = Repo(clone).add(artifact, name=registered.manifest.name, kind="model").manifest
    return _compare(spec, lineage.command, registered.manifest, fresh, tolerance)


def _clone_at(repo: Repo, clone: Path, commit: str) -> None:
    _git(repo.root, "clone", "-q", "--shared", "--no-checkout", str(repo.root), str(clone))
    _git(clone, "checkout", "-q", "--detach", commit)
    local = repo.dir / "config.local.toml"  # this clone's credentials and remote paths
    if local.is_file() and (clone / ".mreg").is_dir():
        shutil.copy2(local, clone / ".mreg" / local.name)


def _git(cwd: Path, *args: str) -> None:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RegistryError(f"git {args[0]} failed for the reproduction: {done.stderr.strip()}")


def _mreg(cwd: Path, *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mreg", *args], cwd=cwd, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RegistryError(f"mreg {args[0]} failed in the reproduction: {done.stderr.strip()}")


def _run(cwd: Path, command: str) -> None:
    """The recorded command (``mreg ...`` runs this mreg), in ``cwd``, its output shown."""
    argv = shlex.split(command)
    if not argv:
        raise UsageError("the recorded command is empty")
    if argv[0] == "mreg":
        argv = [sys.executable, "-m", "mreg", *argv[1:]]
    done = subprocess.run(argv, cwd=cwd, env={**os.environ, ENV: "1"}, capture_output=True)
    if done.returncode != 0:
        last = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise RegistryError(
            f"the recorded command failed (exit {done.returncode}): {command}: {last[0]}"
        )


def _compare(
    spec: str, command: str, old: Manifest, new: Manifest, tolerance: float
) -> Reproduction:
    before = {t.name: (t.shape, t.dtype, t.digest) for t in old.weights}
    after = {t.name: (t.shape, t.dtype, t.digest) for t in new.weights}
    differing = tuple(
        sorted(n for n in before.keys() | after.keys() if before.get(n) != after.get(n))
    )
    if not differing:
        return Reproduction(spec, command, True, len(before))
    metrics = {
        key.removeprefix("metric."): (float(old.meta[key]), float(new.meta[key]))
        for key in old.meta
        if key.startswith("metric.") and key in new.meta
    }
    close = bool(metrics) and all(abs(a - b) <= tolerance for a, b in metrics.values())
    return Reproduction(spec, command, False, len(before), differing, metrics, close)
