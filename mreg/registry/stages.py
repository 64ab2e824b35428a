"""Stages and deprecation as GTO-compatible annotated tags (see ``tags.py`` for the formats).

The stages a repository allows may be listed in ``.mreg/config.toml``::

    [registry]
    stages = ["dev", "staging", "prod"]

Without that list, any stage name GTO can read is allowed: letters and digits, with ``_``, ``-``
and ``/`` inside.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.errors import RegistryError
from mreg.registry.tags import DEPRECATED, ModelHistory, is_version
from mreg.repo.versions import NAME

if TYPE_CHECKING:
    from mreg.repo import Repo

RESERVED = ("latest", DEPRECATED)


def allowed_stages(repo: Repo) -> list[str] | None:
    """The stages ``[registry] stages`` allows, or None when any stage is allowed."""
    stages = repo.config.shared.get("registry", {}).get("stages")
    return None if stages is None else [str(s) for s in stages]


def check_stage(repo: Repo, stage: str) -> str:
    """``stage`` if it may be used; RegistryError says why not."""
    if not NAME.match(stage) or stage in RESERVED or is_version(stage):
        raise RegistryError(
            f"'{stage}' is not a valid stage name: GTO reads only letters, digits, '_', '-' "
            "and '/', starting and ending with a letter or digit",
            hint="for example 'prod' or 'staging'; not 'latest', 'deprecated' or a version",
        )
    allowed = allowed_stages(repo)
    if allowed is not None and stage not in allowed:
        raise RegistryError(
            f"stage '{stage}' is not allowed in this registry",
            hint=f"allowed stages ([registry] stages in .mreg/config.toml): {', '.join(allowed)}",
        )
    return stage


def assign(repo: Repo, history: ModelHistory, version: str, stage: str) -> str:
    """Tag ``NAME#STAGE#N`` on ``version``'s commit; returns the tag name. The version that
    held the stage leaves it first (``NAME#STAGE!#N``): GTO shows the highest version among
    those in a stage, so a stage holds one version at a time for GTO as for mreg."""
    check_stage(repo, stage)
    holder = history.current_stages().get(stage)
    if holder == version:
        raise RegistryError(f"{history.name} {version} is already in stage '{stage}'")
    number = history.next_number()
    if holder is not None:
        number += 1
        unassign(repo, history, stage)
    name = f"{history.name}#{stage}#{number}"
    message = f"Assigning stage {stage} to artifact {history.name} version {version}"
    repo.git.create_tag(name, message, rev=history.registered[version].commit)
    return name


def unassign(repo: Repo, history: ModelHistory, stage: str) -> str:
    """Tag ``NAME#STAGE!#N`` on the commit of the version now in ``stage``; returns the tag."""
    version = history.current_stages().get(stage)
    if version is None:
        raise RegistryError(
            f"no version of '{history.name}' is in stage '{stage}'",
            hint=f"see `mreg models`; stages of {history.name}: "
            + (", ".join(history.current_stages()) or "none"),
        )
    name = f"{history.name}#{stage}!#{history.next_number()}"
    message = f"Unassigning stage {stage} from artifact {history.name} version {version}"
    repo.git.create_tag(name, message, rev=history.registered[version].commit)
    return name


def deprecate(repo: Repo, history: ModelHistory) -> str:
    """Tag ``NAME@deprecated`` on the latest version's commit; returns the tag name."""
    if history.deprecated:
        raise RegistryError(f"'{history.name}' is already deprecated")
    latest = history.latest() or history.all_versions()[-1]
    name = f"{history.name}@{DEPRECATED}"
    repo.git.create_tag(
        name, f"Deprecating artifact {history.name}", rev=history.registered[latest].commit
    )
    return name


def deregister(repo: Repo, history: ModelHistory, versions: list[str]) -> list[str]:
    """Tag every one of ``versions`` removed (GTO's ``NAME@vX.Y.Z!``); returns the tags."""
    tags = []
    for version in versions:
        tag = f"{history.name}@{version}!"
        message = f"Deregistering artifact {history.name} version {version}"
        repo.git.create_tag(tag, message, rev=history.registered[version].commit)
        tags.append(tag)
    return tags
