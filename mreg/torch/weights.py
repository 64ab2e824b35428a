"""Model weights from the registry into a ``torch.nn.Module``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# mreg.torch is the torch integration: only a user who imports it loads torch, never `import mreg`.
import torch  # noqa: TID253

from mreg.errors import UsageError, one_line
from mreg.repo import Repo

# How many mismatching tensors a message lists before it says "and N more".
SHOWN = 3


def load_into(
    module: torch.nn.Module,
    name: str,
    rev: str | None = None,
    strict: bool = True,
    repo: str | Path | Repo | None = None,
) -> Any:
    """Load the weights of model artifact ``name`` (at ``rev``: ``v1.0.0``, a tag or any git
    revision) into ``module``, each tensor checked against its sha256 on the way.

    Returns torch's ``(missing_keys, unexpected_keys)`` result. UsageError, naming the tensors,
    when a tensor's shape differs from the module's or (``strict=True``) when keys are missing
    or unexpected; UsageError too when ``name`` is a dataset.
    """
    repo = repo if isinstance(repo, Repo) else Repo(repo or ".")
    if repo.target(f"{name}@{rev}" if rev else name).manifest.kind != "model":
        raise UsageError(
            f"'{name}' is a dataset, not a model",
            hint="read its rows with mreg.torch.LanceTorchDataset",
        )
    state = repo.load_state_dict(name, rev)
    shown = f"'{name}'" + (f" at {rev}" if rev else "")
    kind = type(module).__name__
    _check_shapes(state, module.state_dict(), shown, kind)
    if strict:
        _check_keys(state, module.state_dict(), shown, kind)
    try:
        return module.load_state_dict(state, strict=strict)
    except RuntimeError as error:
        message = f"the weights of {shown} do not load into {kind}: {one_line(error)}"
        raise UsageError(message) from None


def _check_shapes(state: dict[str, Any], own: dict[str, Any], shown: str, kind: str) -> None:
    wrong = [
        f"{key} is {_shape(state[key])} in {shown}, {_shape(own[key])} in the module"
        for key in sorted(state.keys() & own.keys())
        if tuple(state[key].shape) != tuple(own[key].shape)
    ]
    if wrong:
        raise UsageError(
            f"the weights of {shown} do not fit {kind}: {_listed(wrong)}",
            hint="build the module with the configuration the weights were trained with",
        )


def _check_keys(state: dict[str, Any], own: dict[str, Any], shown: str, kind: str) -> None:
    missing = sorted(own.keys() - state.keys())
    unexpected = sorted(state.keys() - own.keys())
    if not missing and not unexpected:
        return
    parts = []
    if missing:
        parts.append(f"missing {_listed(missing)}")
    if unexpected:
        parts.append(f"unexpected {_listed(unexpected)}")
    raise UsageError(
        f"the weights of {shown} do not match {kind}: {'; '.join(parts)}",
        hint="pass strict=False to load the tensors that match",
    )


def _shape(tensor: Any) -> str:
    return "x".join(str(d) for d in tensor.shape) or "a scalar"


def _listed(items: list[str]) -> str:
    more = f" (and {len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
