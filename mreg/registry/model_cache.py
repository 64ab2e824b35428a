"""The registry's cache of loaded models: the ``MODEL_REGISTRY_CACHE_SIZE`` most recently used
(the seed system's setting), so that loading the same version again returns the same object
instead of reading and building it again. Off (size 0) unless asked for: a cached model is
shared by every caller that loads it, so one caller's training changes what the others get."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

from mreg.errors import RegistryError

ENV_SIZE = "MODEL_REGISTRY_CACHE_SIZE"


def cache_size(given: Any = None) -> int:
    """``given``, else ``$MODEL_REGISTRY_CACHE_SIZE``, else 0; RegistryError unless a whole
    number of at least 0."""
    value = given if given is not None else os.environ.get(ENV_SIZE, "0")
    try:
        size = int(str(value).strip())
    except ValueError:
        size = -1
    if size < 0:
        raise RegistryError(
            f"the model cache size must be a whole number of models (0: no cache), not {value!r}",
            hint=f"set {ENV_SIZE}=8, or pass ModelRegistry(cache_size=8)",
        )
    return size


class LoadedModels:
    """At most ``size`` loaded ``(model, tokenizer)`` pairs; the least recently used goes."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()

    def get(self, key: Hashable) -> tuple[Any, Any] | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: Hashable, value: tuple[Any, Any]) -> None:
        if self.size <= 0:
            return
        self._items[key] = value
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def clear(self) -> None:
        self._items.clear()
