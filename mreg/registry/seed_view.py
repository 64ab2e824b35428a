"""Read access by key for the registry's report objects, as the seed system's dicts had it.

``validate_registry()`` and ``stats()`` return frozen dataclasses (typed, printed by the CLI);
the seed's code reads them as dicts (``result['total_models']``, ``result['errors']``). A class
that mixes ``SeedMapping`` in is also a read-only ``Mapping``: its keys are its fields plus the
seed's names, which win where the two differ (the seed's ``errors`` are one-line strings)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import fields
from typing import Any


class SeedMapping(Mapping[str, Any]):
    """``obj[key]``, ``obj.get(key)``, ``dict(obj)`` over the fields and ``seed_view()``."""

    def seed_view(self) -> dict[str, Any]:
        """The seed's keys and their values (none by default)."""
        return {}

    def _view(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return {**own, **self.seed_view()}

    def __getitem__(self, key: str) -> Any:
        view = self._view()
        if key not in view:
            raise KeyError(f"{key!r}: the keys are {', '.join(view)}")
        return view[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._view())

    def __len__(self) -> int:
        return len(self._view())
