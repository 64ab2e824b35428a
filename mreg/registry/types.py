"""The registry's vocabulary: model formats, model types, compression types."""

from __future__ import annotations

from enum import StrEnum
from typing import Self

from mreg.errors import RegistryError


class _Choice(StrEnum):
    @classmethod
    def parse(cls, value: str | Self) -> Self:
        """The member named or valued ``value`` (any case); RegistryError lists the choices."""
        if isinstance(value, cls):
            return value
        text = str(value).strip().lower()
        for member in cls:
            if text in (member.value, member.name.lower()):
                return member
        choices = ", ".join(m.value for m in cls)
        raise RegistryError(f"unknown {cls.__name__} '{value}'", hint=f"use one of: {choices}")


class ModelFormat(_Choice):
    PYTORCH = "pytorch"
    SAFETENSORS = "safetensors"
    ONNX = "onnx"
    HUGGINGFACE = "huggingface"
    CUSTOM = "custom"


class ModelType(_Choice):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    LANGUAGE_MODEL = "language_model"
    VISION = "vision"
    EMBEDDING = "embedding"
    OBJECT_DETECTION = "object_detection"
    SEGMENTATION = "segmentation"
    GENERATIVE = "generative"
    RECOMMENDATION = "recommendation"
    CUSTOM = "custom"


class CompressionType(_Choice):
    NONE = "none"
    QUANTIZATION_INT8 = "quantization_int8"
    QUANTIZATION_INT4 = "quantization_int4"
    QUANTIZATION_FP16 = "quantization_fp16"
    PRUNING = "pruning"
    DISTILLATION = "distillation"
