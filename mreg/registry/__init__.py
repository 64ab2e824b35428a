"""The model registry: register, version, stage and load models kept in an mreg repository.

Versions are ``NAME@vX.Y.Z`` git tags and stage moves ``NAME#STAGE#N`` tags (GTO's conventions).
Heavy libraries (torch, onnx, transformers) load only inside the loaders that need them.
"""

from __future__ import annotations

from mreg.errors import (
    ModelClassError,
    ModelFileNotFound,
    ModelIntegrityError,
    ModelNotFound,
    RegistryError,
)
from mreg.registry.data_manager import DataManager
from mreg.registry.entries import DatasetEntry, ModelEntry, ModelSummary
from mreg.registry.huggingface import TransformersLoader
from mreg.registry.integrity import calculate_checksum
from mreg.registry.loaders import ModelLoader, OnnxLoader, PytorchLoader
from mreg.registry.metadata import ModelMetadata
from mreg.registry.registry import ModelRegistry
from mreg.registry.shortcuts import (
    register_huggingface_model,
    register_onnx_model,
    register_pytorch_model,
)
from mreg.registry.types import CompressionType, ModelFormat, ModelType

__all__ = [
    "CompressionType",
    "DataManager",
    "DatasetEntry",
    "ModelClassError",
    "ModelEntry",
    "ModelFileNotFound",
    "ModelFormat",
    "ModelIntegrityError",
    "ModelLoader",
    "ModelMetadata",
    "ModelNotFound",
    "ModelRegistry",
    "ModelSummary",
    "ModelType",
    "OnnxLoader",
    "PytorchLoader",
    "RegistryError",
    "TransformersLoader",
    "calculate_checksum",
    "register_huggingface_model",
    "register_onnx_model",
    "register_pytorch_model",
]
