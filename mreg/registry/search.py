"""The registry's search language: space-separated terms, every one must match.

* ``resnet*`` or ``name:resnet*``: the model or dataset name (a glob);
* ``kind:model`` or ``kind:dataset`` (any other kind is an error), ``format:onnx``,
  ``tag:cv`` (or ``tags:``), ``stage:prod`` (versions now in that stage), ``version>=v1.0.0``;
* models: ``type:classification``, any metadata field, ``author:ana`` or ``license!=MIT``,
  and any metric by its name, ``accuracy>=0.9`` (the manifest's ``metric.accuracy``);
* datasets: ``rows>1000``, ``column:label`` (or ``columns:``: a column name), ``size>=1e6``
  (source bytes), ``format:parquet`` (the source format) and any ``[meta]`` field.

Operators: ``:`` and ``=`` match a glob (case-insensitive; numbers compare as numbers), ``!=``
negates it, ``<``, ``<=``, ``>``, ``>=`` compare numbers when both sides are numbers, versions
when both are versions, text otherwise. A version without the field never matches.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Generic, TypeVar

from mreg.errors import RegistryError
from mreg.registry.entries import DatasetEntry, ModelEntry
from mreg.registry.metadata import EXTRA, METRIC, ModelMetadata
from mreg.registry.tags import is_version, version_key

_TERM = re.compile(r"^(?P<key>[A-Za-z_][\w.\-]*)(?P<op>>=|<=|!=|=|>|<|:)(?P<value>[^<>=!:].*)$")
_BARE = re.compile(r"^[^<>=!:]+$")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_ALIASES = {
    "tag": "tags",
    "type": "model_type",
    "format": "format",
    "stage": "stages",
    "column": "columns",
}
KINDS = ("model", "dataset")
HINT = (
    "terms look like resnet*, kind:dataset, rows>1000, column:label, type:classification, "
    "tag:cv, stage:prod, accuracy>=0.9"
)


@dataclass(frozen=True)
class Term:
    """One condition of a query: ``key op value``."""

    key: str
    op: str
    value: str


E = TypeVar("E", ModelEntry, DatasetEntry)


@dataclass(frozen=True)
class Candidate(Generic[E]):
    """One registered version as search sees it: its entry and its manifest's kind."""

    entry: E
    kind: str


def parse(query: str) -> list[Term]:
    """The terms of ``query``; RegistryError names the first malformed one."""
    terms = []
    for text in query.split():
        match = _TERM.match(text)
        if match is not None:
            key = match["key"].lower()
            term = Term(_ALIASES.get(key, key), match["op"], match["value"])
            _check_kind(term, text)
            terms.append(term)
        elif _BARE.match(text):
            terms.append(Term("name", ":", text))
        else:
            raise RegistryError(f"malformed search term '{text}'", hint=HINT)
    return terms


def matches(terms: list[Term], candidate: Candidate[Any]) -> bool:
    """Whether ``candidate`` satisfies every term."""
    return all(_holds(term, _values(term.key, candidate)) for term in terms)


def _check_kind(term: Term, text: str) -> None:
    """RegistryError for a ``kind`` term that no kind can match (``kind:tabel``)."""
    if term.key != "kind" or term.op not in (":", "=", "!="):
        return
    if not any(fnmatchcase(kind, term.value.lower()) for kind in KINDS):
        raise RegistryError(
            f"malformed search term '{text}': no kind '{term.value}'",
            hint="kinds are kind:model and kind:dataset",
        )


def _values(key: str, candidate: Candidate[Any]) -> list[Any]:
    """What the version has under ``key`` (several for list fields; none when it lacks it)."""
    if key == "kind":
        return [candidate.kind]
    if isinstance(candidate.entry, DatasetEntry):
        return _dataset_values(key, candidate.entry)
    entry, meta = candidate.entry, candidate.entry.metadata
    if key in ("name", "version", "stages", "deprecated"):
        return _listed(getattr(entry, key))
    if key in _METADATA_FIELDS:
        return _listed(getattr(meta, key))
    name = key.removeprefix(METRIC)
    if name in meta.performance_metrics:
        return [meta.performance_metrics[name]]
    if name in meta.extra:
        return [meta.extra[name]]
    if key in meta.info:
        return [meta.info[key]]
    return []


def _dataset_values(key: str, entry: DatasetEntry) -> list[Any]:
    """A dataset version's values: its entry's fields, else a ``[meta]`` field (as ``mreg add
    --meta`` writes it, or under ``extra.`` as the registry's metadata do)."""
    if key in ("name", "version", "stages", "deprecated", "rows", "columns", "format", "size"):
        return _listed(getattr(entry, key))
    if key == "tags":
        return list(entry.tags)
    for field in (key, f"{EXTRA}{key}"):
        if field in entry.meta:
            return [entry.meta[field]]
    return []


def _listed(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, tuple | list):
        return list(value)
    if hasattr(value, "value"):  # an enum: its text
        return [value.value]
    return [value]


def _holds(term: Term, values: list[Any]) -> bool:
    if term.op == "!=":
        return bool(values) and not any(_equal(v, term.value) for v in values)
    if term.op in (":", "="):
        return any(_equal(v, term.value) for v in values)
    compare = _ORDER[term.op]
    return any(_ordered(compare, v, term.value) for v in values)


def _equal(value: Any, wanted: str) -> bool:
    number, target = _number(value), _number(wanted)
    if number is not None and target is not None:
        return number == target
    return fnmatchcase(str(value).lower(), wanted.lower())


def _ordered(compare: Callable[[Any, Any], bool], value: Any, wanted: str) -> bool:
    number, target = _number(value), _number(wanted)
    if number is not None and target is not None:
        return compare(number, target)
    text = str(value)
    if is_version(text) and is_version(wanted):
        return compare(version_key(_v(text)), version_key(_v(wanted)))
    return compare(text, wanted)


def _v(text: str) -> str:
    return text if text.startswith("v") else f"v{text}"


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


_METADATA_FIELDS = frozenset(ModelMetadata.__dataclass_fields__) - {
    "name",
    "version",
    "performance_metrics",
    "extra",
    "info",
    "init_kwargs",
}
