"""The registry's search language: space-separated terms, every one must match.

* ``resnet*`` or ``name:resnet*``: the model name (a glob);
* ``type:classification``, ``format:onnx``, ``kind:model``, ``tag:cv`` (or ``tags:``),
  ``stage:prod`` (versions now in that stage), ``version>=v1.0.0``;
* any metadata field, ``author:ana`` or ``license!=MIT``, and any metric by its name,
  ``accuracy>=0.9`` (the manifest's ``metric.accuracy``).

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
from typing import Any

from mreg.errors import RegistryError
from mreg.registry.metadata import METRIC, ModelMetadata
from mreg.registry.tags import is_version, version_key
from mreg.registry.types import ModelEntry

_TERM = re.compile(r"^(?P<key>[A-Za-z_][\w.\-]*)(?P<op>>=|<=|!=|=|>|<|:)(?P<value>[^<>=!:].*)$")
_BARE = re.compile(r"^[^<>=!:]+$")
_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge,
    "<=": operator.le,
    ">": operator.gt,
    "<": operator.lt,
}
_ALIASES = {"tag": "tags", "type": "model_type", "format": "format", "stage": "stages"}
HINT = "terms look like resnet*, type:classification, tag:cv, stage:prod, accuracy>=0.9"


@dataclass(frozen=True)
class Term:
    """One condition of a query: ``key op value``."""

    key: str
    op: str
    value: str


@dataclass(frozen=True)
class Candidate:
    """One registered version as search sees it: its entry and its manifest's kind."""

    entry: ModelEntry
    kind: str


def parse(query: str) -> list[Term]:
    """The terms of ``query``; RegistryError names the first malformed one."""
    terms = []
    for text in query.split():
        match = _TERM.match(text)
        if match is not None:
            key = match["key"].lower()
            terms.append(Term(_ALIASES.get(key, key), match["op"], match["value"]))
        elif _BARE.match(text):
            terms.append(Term("name", ":", text))
        else:
            raise RegistryError(f"malformed search term '{text}'", hint=HINT)
    return terms


def matches(terms: list[Term], candidate: Candidate) -> bool:
    """Whether ``candidate`` satisfies every term."""
    return all(_holds(term, _values(term.key, candidate)) for term in terms)


def _values(key: str, candidate: Candidate) -> list[Any]:
    """What the version has under ``key`` (several for list fields; none when it lacks it)."""
    entry, meta = candidate.entry, candidate.entry.metadata
    if key == "kind":
        return [candidate.kind]
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
