"""Deterministic TOML for manifests and config: stable key order, one list item a line.

tomli_w breaks every array over lines (a tensor shape takes five); reviewers read manifests in
diffs, where one tensor or one file per line is what makes a change obvious.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
INLINE_LIMIT = 80


def dumps(document: Mapping[str, Any]) -> str:
    """Render scalars, lists and inline tables, with nested mappings as ``[a.b]`` sections."""
    lines = _section((), document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _section(path: tuple[str, ...], table: Mapping[str, Any]) -> list[str]:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    lines = []
    if path and (scalars or not table):
        lines += ["", "[" + ".".join(_key(p) for p in path) + "]"]
    lines += _key_values(scalars)
    for name, sub in table.items():
        if isinstance(sub, Mapping):
            lines += _section((*path, name), sub)
    return lines


def _key_values(table: Mapping[str, Any]) -> list[str]:
    lines = []
    for key, value in table.items():
        if value is None:
            continue
        lines.extend(_assignment(_key(key), value))
    return lines


def _assignment(key: str, value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        inline = f"{key} = {_inline(value)}"
        if len(inline) <= INLINE_LIMIT and not any(isinstance(v, Mapping) for v in value):
            return [inline]
        return [f"{key} = [", *(f"    {_inline(item)}," for item in value), "]"]
    return [f"{key} = {_inline(value)}"]


def _inline(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        # A literal string keeps embedded JSON readable: no backslash before every quote.
        if "'" not in value and not any(ord(c) < 32 or c == "\x7f" for c in value):
            return (
                f"'{value}'"
                if '"' in value or "\\" in value
                else json.dumps(value, ensure_ascii=False)
            )
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = ", ".join(f"{_key(k)} = {_inline(v)}" for k, v in value.items() if v is not None)
        return "{ " + items + " }" if items else "{}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_inline(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
