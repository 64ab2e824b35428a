"""The registry's index: what every registered version's manifest says, read straight from git in
a few ``git cat-file --batch`` calls and kept in ``.mreg/cache/registry-index.json``.

Everything in the index is keyed by immutable git ids (``COMMIT:NAME`` -> manifest blob sha,
blob sha -> facts), so it never goes stale: a new version is a new commit, read once and added.
The facts include the manifest's kind, so listings tell models from datasets (which are tagged
``NAME@vX.Y.Z`` too) without another read.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from mreg.atomic import atomic_write_text
from mreg.errors import MregError
from mreg.registry.metadata import ManifestFacts, facts_of
from mreg.repo import manifest as manifests

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mreg.repo import Repo

INDEX_FILE = "registry-index.json"
INDEX_VERSION = 1


class RegistryIndex:
    """Manifest facts of (artifact name, commit) pairs, cached per manifest blob."""

    def __init__(self, repo: Repo) -> None:
        self.repo = repo
        self.path = repo.cache.root / INDEX_FILE
        self.located: dict[str, list[str]] = {}  # "COMMIT:NAME" -> [manifest path, blob sha]
        self.facts: dict[str, dict[str, Any]] = {}  # blob sha -> ManifestFacts as JSON
        self._changed = False
        self._load()

    def lookup(
        self, wanted: list[tuple[str, str]], folders: dict[str, str]
    ) -> dict[str, tuple[str, ManifestFacts]]:
        """``(manifest path, ManifestFacts)`` per ``COMMIT:NAME`` of ``wanted`` (name, commit)
        pairs. A manifest is looked for in ``folders[name]`` (the model's registry folder) first,
        then in the folders where the name's manifest was found at other commits, and last in
        the commit's whole tree, one commit per name at a time (so an artifact kept outside the
        registry folder costs one tree listing, not one per version). Pairs with no readable
        manifest of that name in their commit are left out."""
        self._locate([p for p in wanted if not self._known(*p)], folders)
        self._read_facts()
        rest = [p for p in wanted if not self._known(*p)]
        scanned: set[str] = set()
        while rest:
            self._locate_near(rest)
            self._read_facts()
            rest = [p for p in rest if not self._known(*p)]
            fresh: dict[str, str] = {}  # name -> one commit of it not scanned yet
            for name, commit in rest:
                if commit not in scanned:
                    fresh.setdefault(name, commit)
            if not fresh:
                break
            self._scan(set(fresh.values()), rest)
            scanned.update(fresh.values())
            rest = [p for p in rest if not self._known(*p)]
        found = {}
        for name, commit in wanted:
            key = f"{commit}:{name}"
            if self._known(name, commit):
                rel, sha = self.located[key]
                found[key] = (rel, _facts(self.facts[sha]))
        return found

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

    def _known(self, name: str, commit: str) -> bool:
        """Whether the index holds the facts of ``name``'s manifest at ``commit``."""
        place = self.located.get(f"{commit}:{name}")
        return place is not None and self._names(place[1], name)

    def _names(self, sha: str, name: str) -> bool:
        document = self.facts.get(sha)
        return document is not None and document.get("name") == name

    def _place(self, name: str, commit: str, rel: str, sha: str) -> None:
        self.located[f"{commit}:{name}"] = [rel, sha]
        self._changed = True

    def _locate(self, pairs: list[tuple[str, str]], folders: dict[str, str]) -> None:
        """Find the manifest blob of each pair by listing its folder's tree at the commit."""
        specs = {f"{c}:{folders[n]}": (n, c) for n, c in pairs if n in folders}
        trees = self.repo.git.read_blobs(list(specs))
        for spec, listing in trees.items():
            name, commit = specs[spec]
            for line in listing.decode().splitlines():
                entry, _, sha = line.partition("\t")
                if entry.endswith(manifests.SUFFIX):
                    self._place(name, commit, f"{folders[name]}/{entry}", sha)
                    break

    def _locate_near(self, pairs: list[tuple[str, str]]) -> None:
        """Find the manifest of each pair at the paths where its name's manifest was found at
        other commits, by listing those paths' folders at the pair's commit (one batch)."""
        names = {name for name, _ in pairs}
        hints: dict[str, set[str]] = {}
        for key, (rel, sha) in self.located.items():
            name = key.partition(":")[2]
            if name in names and self._names(sha, name):
                hints.setdefault(name, set()).add(rel)
        wanted: dict[str, list[tuple[str, str, str]]] = {}  # folder spec -> (name, commit, rel)
        for name, commit in pairs:
            for rel in sorted(hints.get(name, ())):
                spec = f"{commit}:{posixpath.dirname(rel)}"
                wanted.setdefault(spec, []).append((name, commit, rel))
        trees = self.repo.git.read_blobs(list(wanted))
        placed: set[tuple[str, str]] = set()
        for spec, listing in trees.items():
            entries = dict(line.partition("\t")[::2] for line in listing.decode().splitlines())
            for name, commit, rel in wanted[spec]:
                blob = entries.get(posixpath.basename(rel))
                if blob is not None and (name, commit) not in placed:
                    self._place(name, commit, rel, blob)
                    placed.add((name, commit))

    def _scan(self, commits: Iterable[str], pairs: list[tuple[str, str]]) -> None:
        """Read every manifest in the trees of ``commits`` (one listing each, the blobs in one
        batch) and locate the ``pairs`` at those commits by the name their manifest gives."""
        listed = {commit: self.repo.git.blobs_at(commit, manifests.SUFFIX) for commit in commits}
        self._read_facts({sha for blobs in listed.values() for sha, _ in blobs})
        wanted = set(pairs)
        for commit, blobs in listed.items():
            for sha, rel in blobs:
                name = str(self.facts.get(sha, {}).get("name"))
                if (name, commit) in wanted and not self._known(name, commit):
                    self._place(name, commit, rel, sha)

    def _read_facts(self, shas: set[str] | None = None) -> None:
        """Parse the manifest blobs the index has located (or ``shas``) and holds no facts of."""
        if shas is None:
            shas = {sha for _, sha in self.located.values()}
        blobs = self.repo.git.read_blobs(sorted(shas - set(self.facts)))
        for sha, data in blobs.items():
            try:
                manifest = manifests.loads(data.decode("utf-8"), sha)
            except (MregError, UnicodeDecodeError):
                continue
            self.facts[sha] = asdict(facts_of(manifest))
            self._changed = True


def _facts(document: dict[str, Any]) -> ManifestFacts:
    return ManifestFacts(**{**document, "dtypes": tuple(document["dtypes"])})
