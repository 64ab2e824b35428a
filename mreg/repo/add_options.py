"""What ``mreg add`` is asked and what it answers: ``AddOptions``, checked once when made, and
``AddResult``. The CLI, ``Repo.add`` and the add modules pass one ``AddOptions`` down."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from mreg.errors import UsageError
from mreg.repo import manifest as manifests

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.converters.base import DatasetConverter, ReadOptions
    from mreg.repo.manifest import FileEntry, Fragment, Manifest
    from mreg.repo.work_tree import WorkTree

Mode = Literal["overwrite", "append"]
MODES = ("overwrite", "append")
KINDS = ("model", "dataset")


class Engine(Protocol):
    """Converts a dataset somewhere else than in this process (``mreg.ray.RayEngine``)."""

    def write_table(
        self,
        repo: WorkTree,
        converter: DatasetConverter,
        path: Path,
        schema: pa.Schema,
        first_id: int,
        options: ReadOptions,
    ) -> tuple[list[Fragment], list[FileEntry]]:
        """The rows of ``path`` as Lance fragments numbered from ``first_id``, in the order a
        local read gives them, their data files in the cache or on the default remote;
        nothing referenced on failure."""
        ...

    def source_listing(self, path: Path) -> list[tuple[str, int, str]]:
        """After ``write_table``: what ``sha256_listing(path)`` gives (a file: its one entry),
        from the digests taken where the sources were read."""
        ...


@dataclass(frozen=True)
class AddOptions:
    """How to add a path; a bad value is refused here, before anything is read or written.

    ``name``: the artifact's name (default: the previous version's, or one made from the file
    name). ``kind``: model or dataset, checked against what the file is. ``format``: a
    converter to use instead of detecting one. ``mode``: overwrite, or append rows to a
    dataset. ``meta`` is merged into the previous version's metadata, or replaces them with
    ``replace_meta``. ``skip_bad``: records a converter cannot read are left out and named in
    ``AddResult.skipped``. ``source_url``: where the file was downloaded from (``mreg
    import``). ``engine``: converts a dataset elsewhere (on a Ray cluster) into the same rows.
    """

    name: str | None = None
    kind: str | None = None
    format: str | None = None
    mode: Mode = "overwrite"
    meta: dict[str, str] = field(default_factory=dict)
    skip_bad: bool = False
    source_url: str = ""
    replace_meta: bool = False
    engine: Engine | None = None

    def __post_init__(self) -> None:
        check_kind_and_name(self.kind, self.name)
        if self.mode not in MODES:
            raise UsageError(f"unknown mode '{self.mode}'", hint="use overwrite or append")
        # A copy: the caller's dict may change after; a frozen options value must not.
        object.__setattr__(self, "meta", dict(self.meta))


@dataclass(frozen=True)
class AddResult:
    manifest: Manifest
    manifest_path: str
    changed: bool
    new_bytes: int
    skipped: tuple[str, ...] = ()
    # Why the path was tracked as opaque bytes (blob, blob_dir); "" for a format mreg reads.
    opaque: str = ""


def check_kind_and_name(kind: str | None, name: str | None) -> None:
    """Refuse a kind other than model or dataset, and a name no artifact can have."""
    if kind is not None and kind not in KINDS:
        raise UsageError(f"unknown kind '{kind}'", hint="use model or dataset")
    if name is not None:
        manifests.check_name(name)
