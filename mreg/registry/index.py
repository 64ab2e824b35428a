"""The registry's search index: what every registered version's manifest says, read straight from
git in two ``git cat-file --batch`` calls and kept in ``.mreg/cache/registry-index.json``.

Everything in the index is keyed by immutable git ids (``COMMIT:NAME`` -> manifest blob sha,
blob sha -> facts), so it never goes stale: a new version is a new commit, read once and added.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mreg.atomic import atomic_write_text
from mreg.errors import MregError
from mreg.registry.metadata import ManifestFacts, facts_of
from mreg.repo import manifest as manifests

if TYPE_CHECKING:
    from mreg.repo import Repo

INDEX_FILE = "registry-index.json"
INDEX_VERSION = 1


class RegistryIndex:
    """Manifest facts of (model name, commit) pairs, cached per manifest blob."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.path = repo.cache.root / INDEX_FILE
        self.located: dict[str, list[str]] = {}  # "COMMIT:NAME" -> [manifest path, blob sha]
        self.facts: dict[str, dict[str, Any]] = {}  # blob sha -> ManifestFacts as JSON
        self._changed = False
        self._load()

    def lookup(self, wanted: list[tuple[str, str]], folders: dict[str, str]) -> dict[str, Any]:
        """``(manifest path, ManifestFacts)`` per ``COMMIT:NAME`` of ``wanted`` (name, commit)
        pairs; ``folders`` names where each model's manifest should be (its registry folder).
        Pairs whose manifest is not there are left out (the caller reads them the slow way)."""
        missing = [(n, c) for n, c in wanted if f"{c}:{n}" not in self.located]
        self._locate(missing, folders)
        self._read_facts()
        found = {}
        for name, commit in wanted:
            place = self.located.get(f"{commit}:{name}")
            document = self.facts.get(place[1]) if place else None
            if place and document and document["name"] == name:
                found[f"{commit}:{name}"] = (place[0], _facts(document))
        return found

    def remember(self, name: str, commit: str, rel: str, facts: ManifestFacts) -> None:
        """Record a manifest the caller read itself (outside its registry folder)."""
        key = f"{commit}:{name}"
        self.located[key] = [rel, key]
        self.facts[key] = asdict(facts)
        self._changed = True

    def save(self) -> None:
        """Write the index if this search added to it."""
        if not self._changed:
            return
        document = {"version": INDEX_VERSION, "located": self.located, "facts": self.facts}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(document, separators=(",", ":")))
        self._changed = False

    def _load(self) -> None:
        try:
            document = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # no index yet, or a damaged one: rebuilt from git
        if not isinstance(document, dict) or document.get("version") != INDEX_VERSION:
            return
        self.located = document.get("located", {})
        self.facts = document.get("facts", {})

    def _locate(self, pairs: list[tuple[str, str]], folders: dict[str, str]) -> None:
        """Find the manifest blob of each pair by listing its folder's tree at the commit."""
        specs = {f"{c}:{folders[n]}": (n, c) for n, c in pairs if n in folders}
        trees = self.repo.git.read_blobs(list(specs))
        for spec, listing in trees.items():
            name, commit = specs[spec]
            for line in listing.decode().splitlines():
                entry, _, sha = line.partition("\t")
                if entry.endswith(manifests.SUFFIX):
                    self.located[f"{commit}:{name}"] = [f"{folders[name]}/{entry}", sha]
                    self._changed = True
                    break

    def _read_facts(self) -> None:
        shas = sorted({sha for _, sha in self.located.values()} - set(self.facts))
        blobs = self.repo.git.read_blobs(shas)
        for sha, data in blobs.items():
            try:
                manifest = manifests.loads(data.decode("utf-8"), sha)
            except (MregError, UnicodeDecodeError):
                continue
            self.facts[sha] = asdict(facts_of(manifest))
            self._changed = True


def _facts(document: dict[str, Any]) -> ManifestFacts:
    return ManifestFacts(**{**document, "dtypes": tuple(document["dtypes"])})
