"""Which model classes loading may build: a manifest names a class, and a manifest may come from
anyone who can push to a repository the user clones.

Importing a module runs its code, and calling a class runs its constructor, so a class is built
only when its module is trusted and it is a ``torch.nn.Module`` subclass (checked before it is
called). Trusted without asking: ``torch.nn`` and ``transformers`` (model classes only), and
mreg's own demo models. Anything else the user opts into, never the repository:

* ``ModelRegistry(trusted_modules=["mypackage"])``,
* ``MREG_TRUSTED_MODULES=mypackage,other`` in the environment,
* ``[registry] trusted_modules = ["mypackage"]`` in the git-ignored ``.mreg/config.local.toml``
  (the committed ``config.toml`` cannot trust modules: a clone would trust itself).

A trusted name covers its submodules (``mypackage`` trusts ``mypackage.models``).
"""

from __future__ import annotations

import importlib
import os
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from mreg.errors import ModelClassError, one_line

if TYPE_CHECKING:
    from mreg.repo import Repo

ENV = "MREG_TRUSTED_MODULES"
BUILT_IN = ("torch.nn", "transformers", "mreg.demo")
_CLASS_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)+$", re.ASCII)


def trusted_modules(repo: Repo, given: Iterable[str] | None = None) -> tuple[str, ...]:
    """The modules the user trusts: ``given``, the environment, the local config; built-ins."""
    local = repo.config.local.get("registry", {}).get("trusted_modules", [])
    names = [*(given or ()), *os.environ.get(ENV, "").split(","), *_strings(local)]
    return tuple(dict.fromkeys(n.strip() for n in [*BUILT_IN, *names] if n.strip()))


def model_class(class_path: str, trusted: Iterable[str] = BUILT_IN) -> Any:
    """The ``torch.nn.Module`` subclass (or Transformers auto class) ``class_path`` names, if
    its module is trusted; ModelClassError (an ImportError) otherwise, with nothing imported
    or called from an untrusted module."""
    if not _CLASS_PATH.match(class_path):
        raise ModelClassError(f"model class {class_path[:100]!r} is not a module.Class path")
    module_name, _, class_name = class_path.rpartition(".")
    if not is_trusted(module_name, tuple(trusted)):
        raise ModelClassError(
            f"model class {class_path} is not trusted: mreg builds torch.nn and transformers "
            "model classes, and classes of modules you trust",
            hint=f"if you trust the code of {module_name}, add it to [registry] trusted_modules "
            f"in .mreg/config.local.toml, or set {ENV}={module_name}, "
            f"or pass ModelRegistry(trusted_modules=['{module_name}'])",
        )
    try:
        found = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError, ValueError) as error:
        raise ModelClassError(
            f"model class {class_path} does not import: {one_line(error)}",
            hint="install or put on sys.path the package that defines it",
        ) from None
    if not _is_model_class(found):
        raise ModelClassError(
            f"{class_path} is not a torch.nn.Module class; mreg does not call it",
            hint="record the model's own class in model_class",
        )
    return found


def is_trusted(module: str, trusted: tuple[str, ...]) -> bool:
    """Whether classes of ``module`` may be built: it or a package above it is trusted."""
    return any(module == t or module.startswith(t + ".") for t in trusted)


def _is_model_class(found: Any) -> bool:
    if not isinstance(found, type):
        return False
    import torch

    if issubclass(found, torch.nn.Module):
        return True
    # AutoModel and its kin build a PreTrainedModel through from_pretrained.
    return found.__module__.startswith("transformers.models.auto.") and hasattr(
        found, "from_pretrained"
    )


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return value.split(",")
    return [str(v) for v in value] if isinstance(value, list) else []
