"""Loading one registered version, checked: sha256 first (``integrity``), then the format's
loader (``loaders``); and giving the memory back when a temporary model is done with."""

from __future__ import annotations

import gc
import sys
from typing import Any

from mreg.errors import IntegrityError, ModelIntegrityError, RegistryError
from mreg.registry.huggingface import TransformersLoader
from mreg.registry.integrity import check_integrity
from mreg.registry.loaders import OnnxLoader, PytorchLoader, StoredModel
from mreg.registry.types import ModelFormat


def default_loaders() -> dict[ModelFormat, Any]:
    """The built-in loader of every format but CUSTOM."""
    pytorch = PytorchLoader()
    return {
        ModelFormat.PYTORCH: pytorch,
        ModelFormat.SAFETENSORS: pytorch,
        ModelFormat.ONNX: OnnxLoader(),
        ModelFormat.HUGGINGFACE: TransformersLoader(),
    }


def loader_for(loaders: dict[ModelFormat, Any], fmt: ModelFormat) -> Any:
    """The loader of ``fmt`` among ``loaders``; RegistryError says how to plug one in."""
    loader = loaders.get(fmt)
    if loader is None:
        raise RegistryError(
            f"no loader for format '{fmt.value}'",
            hint="plug one in: registry.loaders[fmt] = MyLoader()",
        )
    return loader


def load(
    stored: StoredModel, loader: Any, device: str = "cpu", **kwargs: Any
) -> tuple[Any, Any | None]:
    """``(model, tokenizer)`` of ``stored`` through ``loader``, after every cached data file
    passed its sha256 (ModelIntegrityError otherwise, also for a tensor whose digest fails on
    read)."""
    check_integrity(stored.repo, stored.manifest, stored.rev)
    try:
        if hasattr(loader, "load_stored"):
            model, tokenizer = loader.load_stored(stored, device=device, **kwargs)
            return model, tokenizer
        # A plug-in loader reads the artifact in its original form, restored from the cache.
        with stored.repo.cache.staging() as folder:
            path = stored.restore_into(folder)
            return loader.load(str(path), device=device, **kwargs), None
    except ModelIntegrityError:
        raise
    except IntegrityError as error:
        raise ModelIntegrityError(error.message, hint=error.hint) from None


def free_memory() -> None:
    """Collect what is no longer referenced, and return cached GPU memory to the device."""
    gc.collect()
    # Only if torch is loaded already: a model that never touched torch has nothing cached.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
