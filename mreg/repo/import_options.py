"""What ``mreg import`` is asked, whatever the source: ``ImportOptions``, checked once when
made, and which kind of source a URI names. ``url_import`` and ``hf_import`` import them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mreg.repo.add_options import AddOptions, check_kind_and_name

HF_SCHEME = "hf://"
HF_DATASET_SCHEME = "hf-dataset://"


def is_hf(uri: str) -> bool:
    """Whether ``uri`` names a Hugging Face repo or dataset rather than an http(s) file."""
    return uri.startswith((HF_SCHEME, HF_DATASET_SCHEME))


@dataclass(frozen=True)
class ImportOptions:
    """Where an import lands and how it is added; a bad value is refused here, before any
    download. ``path``: where to put it (default: the URL's file name, or ``ORG--NAME``).
    ``name``, ``kind`` and ``meta`` as for ``mreg add`` (``kind`` of an hf:// import is the
    Hub repo's type). ``force``: replace a different file or folder at ``path``."""

    path: str | Path | None = None
    name: str | None = None
    kind: str | None = None
    meta: dict[str, str] = field(default_factory=dict)
    force: bool = False

    def __post_init__(self) -> None:
        check_kind_and_name(self.kind, self.name)
        # A copy: the caller's dict may change after; a frozen options value must not.
        object.__setattr__(self, "meta", dict(self.meta))

    def adding(
        self, source_url: str, format: str | None = None, meta: dict[str, str] | None = None
    ) -> AddOptions:
        """The options of the add that tracks what the import brought: ``source_url`` is
        recorded as its source, ``meta`` (what the source says of itself) joins the user's."""
        return AddOptions(
            name=self.name,
            kind=self.kind,
            format=format,
            meta={**self.meta, **(meta or {})},
            source_url=source_url,
        )
