"""The constructor arguments of a ``torch.nn.Module``, recovered when it is registered without
``init_kwargs`` so that ``load_model`` can build it again.

Standard layers keep each constructor argument under an attribute of the same name
(``nn.Linear``: ``in_features``, ``out_features``, and ``bias`` as a parameter or None). The
arguments found are checked by building the class on torch's ``meta`` device (no memory, no
weights) and comparing the state dict's keys and shapes with the model's. A class is built only
when the trust policy allows it (``mreg.registry.trust``); an untrusted one is recorded unchecked,
and loading it needs it trusted anyway. Anything that cannot be recovered is refused before the
registration writes anything, with a message naming ``init_kwargs``.
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

from mreg.errors import RegistryError, one_line
from mreg.registry import trust

_SKIPPED = ("device", "dtype")
_TWICE = re.compile(r"multiple values for (?:keyword )?argument '(\w+)'")
_MISSING = object()


def is_module(model: Any) -> bool:
    """Whether ``model`` is a ``torch.nn.Module`` (without importing torch for other models)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(model, torch.nn.Module)


def recover_init_kwargs(model: Any, trusted: tuple[str, ...] = trust.BUILT_IN) -> dict[str, Any]:
    """The JSON constructor arguments that rebuild ``model``'s class with its state dict's keys
    and shapes; RegistryError (naming ``init_kwargs``) when they cannot be found."""
    cls = type(model)
    label = f"{cls.__module__}.{cls.__qualname__}"
    found, missing = _from_attributes(model)
    if missing:
        raise _unrecoverable(label, f"no attribute holds its argument {', '.join(missing)}")
    if not trust.is_trusted(cls.__module__, trusted):
        return found  # never built here; loading refuses it until the user trusts its module
    return _checked(cls, label, found, _shapes(model.state_dict()))


def _from_attributes(model: Any) -> tuple[dict[str, Any], list[str]]:
    """``(arguments found, required arguments not found)`` from same-named attributes, and
    the defaults of the others."""
    found: dict[str, Any] = {}
    missing = []
    for param in _parameters(type(model)):
        value = _json_value(getattr(model, param.name, _MISSING), param.default)
        if value is _MISSING:
            # Not kept: the default, recorded so a later change of it does not change the model.
            value = _json_value(param.default, None)
        if value is not _MISSING:
            found[param.name] = value
        elif param.default is inspect.Parameter.empty:
            missing.append(param.name)
    return found, missing


def _parameters(cls: type) -> list[inspect.Parameter]:
    """The named constructor parameters of ``cls``, or of the first class in its MRO that has
    some (``nn.LSTM`` passes ``*args, **kwargs`` on to ``nn.RNNBase``)."""
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        params = list(inspect.signature(init).parameters.values())[1:]
        named = [
            p
            for p in params
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name not in _SKIPPED
        ]
        if named or not params:
            return named
    return []


def _json_value(value: Any, default: Any) -> Any:
    """``value`` as a JSON argument, or _MISSING; a tensor or None stands for a bool flag
    (``bias``) when the parameter's default is a bool."""
    if isinstance(default, bool) and not isinstance(value, bool) and value is not _MISSING:
        torch = sys.modules["torch"]
        if value is None or isinstance(value, torch.Tensor):
            return value is not None
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, list | tuple) and all(
        isinstance(v, bool | int | float | str) for v in value
    ):
        return list(value)
    return _MISSING


def _checked(
    cls: type, label: str, found: dict[str, Any], wanted: dict[str, Any]
) -> dict[str, Any]:
    """``found`` once the class built with it has the ``wanted`` state dict shapes; an argument
    the class passes on itself (``nn.LSTM``'s ``mode``) is left out."""
    import torch

    kwargs = dict(found)
    while True:
        try:
            with torch.device("meta"):
                built = cls(**kwargs)
        except TypeError as error:
            twice = _TWICE.search(str(error))
            if twice and twice.group(1) in kwargs:
                del kwargs[twice.group(1)]
                continue
            raise _unrecoverable(label, f"building it failed: {one_line(error, 120)}") from None
        except Exception as error:  # a user constructor may fail in any way
            raise _unrecoverable(label, f"building it failed: {one_line(error, 120)}") from None
        break
    if _shapes(built.state_dict()) != wanted:
        raise _unrecoverable(label, f"built with {kwargs} its weights have other shapes")
    return kwargs


def _shapes(state: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


def _unrecoverable(label: str, reason: str) -> RegistryError:
    return RegistryError(
        f"cannot record how to build {label} again ({reason})",
        hint="pass its constructor arguments: register_model(..., init_kwargs={...}), "
        "or register model.state_dict()",
    )
