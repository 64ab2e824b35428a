"""Commit the demo's inputs and give each dataset a version, so the registered model can name
exactly what it was trained on (``training_dataset_version`` is the dataset's tag)."""

from __future__ import annotations

from mreg.repo import Repo
from mreg.repo.versions import VERSION, version_key

FIRST_VERSION = "v1.0.0"


def commit_inputs(repo: Repo, folder: str) -> str:
    """Commit the manifests (and .gitignore files) under ``folder``, nothing else the user has
    staged; returns the commit holding them as they are now."""
    return repo.git.commit_paths(folder, f"mreg demo: inputs under {folder}/")


def version_dataset(repo: Repo, name: str) -> str:
    """``NAME@vX.Y.Z`` of the committed dataset ``name``: its tag if one marks the commit that
    last changed it, else a new tag (``v1.0.0``, then the next minor version)."""
    found = repo.lookup(name, "HEAD")
    if found is None:
        raise AssertionError(f"{name} is not committed")  # commit_inputs ran first
    last_change = repo.git.log(found[0])[0].sha
    tags = [t for t in repo.git.tags(f"{name}@v") if VERSION.match(t.name.split("@", 1)[1])]
    for existing in tags:
        if existing.commit == last_change:
            return existing.name
    numbers = [version_key(t.name.split("@", 1)[1])[:3] for t in tags]
    version = f"v{max(numbers)[0]}.{max(numbers)[1] + 1}.0" if numbers else FIRST_VERSION
    # On the commit that made this version (not HEAD): the registry's lineage looks there.
    tag = f"{name}@{version}"
    repo.git.create_tag(tag, f"{name} {version}, as the mreg demo trained on it", rev=last_change)
    return tag
