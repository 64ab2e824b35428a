"""The version index: what the manifest of every tagged version says, read straight from git in a
few ``git cat-file --batch`` calls and kept in ``.mreg/cache/registry-index.json``. The registry
lists and searches through it; ``push`` and ``status`` find the data files of every version in
it.

Everything in the index is keyed by immutable git ids (``COMMIT:NAME`` -> manifest blob sha,
blob sha -> facts), so it never goes stale: a new version is a new commit, read once and added.
The facts include the manifest's kind, so listings tell models from datasets (which are tagged
``NAME@vX.Y.Z`` too) without another read, and its data files, so a push needs no manifest read.
"""

from __future__ import annotations

import json
import posixpath
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mreg.atomic import atomic_output
from mreg.errors import MregError
from mreg.repo import manifest as manifests
from mreg.repo.manifest import FileEntry, Manifest

if TYPE_CHECKING:
    from collections.abc import Iterable

    from mreg.repo.work_tree import WorkTree

INDEX_FILE = "registry-index.json"
INDEX_VERSION = 3  # 3: rows and column names, for dataset search


@dataclass(frozen=True)
class ManifestFacts:
    """The few things a manifest says that listings and transfers need: small, and plain JSON,
    so the index can keep them per manifest blob."""

    name: str
    kind: str
    meta: dict[str, str]
    parameters: int
    size: int
    dtypes: tuple[str, ...]
    info: dict[str, str]
    source_format: str
    files: tuple[FileEntry, ...] = ()
    rows: int = 0
    columns: tuple[str, ...] = ()


def facts_of(manifest: Manifest) -> ManifestFacts:
    return ManifestFacts(
        name=manifest.name,
        kind=manifest.kind,
        meta=dict(manifest.meta),
        parameters=manifest.parameters,
        size=manifest.source.size,
        dtypes=tuple(manifest.dtypes),
        info=dict(manifest.info),
        source_format=manifest.source.format,
        files=tuple(manifest.files),
        rows=manifest.rows,
        columns=tuple(c.name for c in manifest.columns),
    )


class ManifestIndex:
    """Manifest facts of (artifact name, commit) pairs, cached per manifest blob."""

    def __init__(self, repo: WorkTree) -> None:
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
        """Write the index if this search added to it. It is a cache: it is not synced to
        disk (lost, it is read again from git), and a cache folder this process may not write
        (a shared, read-only one) is left as it is."""
        if not self._changed:
            return
        document = {"version": INDEX_VERSION, "located": self.located, "facts": self.facts}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_output(self.path, durable=False) as out:
                out.write(json.dumps(document, separators=(",", ":")).encode())
        except OSError:
            return
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
        """Find the manifest blob of each pair among the manifests its folder (``""``: the
        root) holds at the commit; a folder may hold several, each read once by blob."""
        wanted: dict[str, list[tuple[str, str]]] = {}  # folder spec -> pairs
        for name, commit in pairs:
            if name in folders:
                wanted.setdefault(f"{commit}:{folders[name]}", []).append((name, commit))
        listed: dict[str, list[tuple[str, str]]] = {}  # folder spec -> (manifest path, blob)
        for spec, listing in self.repo.git.read_blobs(list(wanted)).items():
            folder = spec.partition(":")[2]
            for line in listing.decode().splitlines():
                entry, _, sha = line.partition("\t")
                if entry.endswith(manifests.SUFFIX):
                    listed.setdefault(spec, []).append((posixpath.join(folder, entry), sha))
        self._read_facts({sha for found in listed.values() for _, sha in found})
        for spec, found in listed.items():
            for name, commit in wanted[spec]:
                rel, sha = next(((r, b) for r, b in found if self._names(b, name)), ("", ""))
                if sha:
                    self._place(name, commit, rel, sha)

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
    files = tuple(FileEntry(**f) for f in document["files"])
    return ManifestFacts(
        **{
            **document,
            "dtypes": tuple(document["dtypes"]),
            "files": files,
            "columns": tuple(document.get("columns", ())),
        }
    )
