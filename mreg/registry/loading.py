"""Loading one registered version: sha256 first, then the format's loader; and giving the memory
back when a temporary model is done with."""

from __future__ import annotations

import gc
import sys
from typing import TYPE_CHECKING, Any

from mreg.errors import IntegrityError, ModelIntegrityError
from mreg.registry.huggingface import TransformersLoader
from mreg.registry.loaders import OnnxLoader, PytorchLoader, StoredModel
from mreg.registry.types import ModelFormat

if TYPE_CHECKING:
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest


def default_loaders() -> dict[ModelFormat, Any]:
    """The built-in loader of every format but CUSTOM."""
    pytorch = PytorchLoader()
    return {
        ModelFormat.PYTORCH: pytorch,
        ModelFormat.SAFETENSORS: pytorch,
        ModelFormat.ONNX: OnnxLoader(),
        ModelFormat.HUGGINGFACE: TransformersLoader(),
    }


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


def check_integrity(repo: Repo, manifest: Manifest, commit: str) -> None:
    """sha256 of every cached data file of ``manifest``; missing ones are fetched (and checked
    on arrival) when the model is opened."""
    for entry in manifest.files:
        if not repo.cache.path(entry.path).exists():
            continue
        problem = repo.cache.verify(entry)
        if problem is not None:
            raise ModelIntegrityError(
                f"{manifest.name} at {commit[:12]}: {entry.path} is {problem}",
                hint=f"delete .mreg/cache/{entry.path} and run `mreg fetch {manifest.name}`",
            )


def free_memory() -> None:
    """Collect what is no longer referenced, and return cached GPU memory to the device."""
    gc.collect()
    # Only if torch is loaded already: a model that never touched torch has nothing cached.
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
