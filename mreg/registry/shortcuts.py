"""The seed system's module-level registration helpers: ``register_pytorch_model(name, model,
version="1.0.0")`` and its kin register into ``ModelRegistry()``, the registry of
``$MODEL_REGISTRY_PATH`` or of the current directory, with the seed's default version."""

from __future__ import annotations

from typing import Any

from mreg.registry.entries import ModelEntry
from mreg.registry.registry import ModelRegistry

SEED_VERSION = "1.0.0"


def register_pytorch_model(
    name: str, model: Any, version: str = SEED_VERSION, **kwargs: Any
) -> ModelEntry:
    """``ModelRegistry().register_pytorch_model``: an ``nn.Module``, state dict or weights path."""
    return ModelRegistry().register_pytorch_model(name, model, version=version, **kwargs)


def register_onnx_model(
    name: str, model: Any, version: str = SEED_VERSION, **kwargs: Any
) -> ModelEntry:
    """``ModelRegistry().register_onnx_model``: a ``ModelProto`` or ``.onnx`` path."""
    return ModelRegistry().register_onnx_model(name, model, version=version, **kwargs)


def register_huggingface_model(
    name: str, model: Any, tokenizer: Any = None, version: str = SEED_VERSION, **kwargs: Any
) -> ModelEntry:
    """``ModelRegistry().register_huggingface_model``: a ``PreTrainedModel`` (with its
    tokenizer) or a ``save_pretrained`` folder."""
    return ModelRegistry().register_huggingface_model(
        name, model, tokenizer=tokenizer, version=version, **kwargs
    )
