"""How the registry's dataclasses travel in the gRPC messages, both ways.

A ``ModelEntry`` goes as a typed message (what a client in any language needs: name, version,
tag, stages, format, type, metrics, tags) plus its whole ``ModelMetadata`` as JSON, from which
the Python client rebuilds the same dataclass the local registry returns. Reports (statistics,
validation) go as the JSON of their dataclass.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from mreg.registry.entries import ModelEntry
from mreg.registry.metadata import ModelMetadata
from mreg.registry.stats import RegistryStats
from mreg.registry.types import CompressionType, ModelFormat, ModelType
from mreg.registry.validate import ValidationProblem, ValidationReport

if TYPE_CHECKING:
    from mreg.protocol import mreg_pb2


def to_json(value: Any) -> str:
    """The JSON of a dataclass (enums as their values, tuples as lists)."""
    return json.dumps(dataclasses.asdict(value), sort_keys=True)


def entry_message(entry: ModelEntry) -> mreg_pb2.ModelEntry:
    """The wire form of ``entry``."""
    from mreg.protocol import mreg_pb2

    return mreg_pb2.ModelEntry(
        name=entry.name,
        version=entry.version,
        tag=entry.tag,
        commit=entry.commit,
        registered_at=entry.registered_at,
        manifest_path=entry.manifest_path,
        stages=list(entry.stages),
        deprecated=entry.deprecated,
        model_format=entry.model_format.value,
        model_type=entry.model_type.value,
        performance_metrics=entry.metadata.performance_metrics,
        tags=list(entry.metadata.tags),
        metadata_json=to_json(entry.metadata),
    )


def entry_from_message(message: mreg_pb2.ModelEntry) -> ModelEntry:
    """The ``ModelEntry`` that ``entry_message`` sent."""
    return ModelEntry(
        name=message.name,
        version=message.version,
        tag=message.tag,
        commit=message.commit,
        registered_at=message.registered_at,
        manifest_path=message.manifest_path,
        stages=tuple(message.stages),
        deprecated=message.deprecated,
        metadata=metadata_from_json(message.metadata_json),
    )


def metadata_from_json(text: str) -> ModelMetadata:
    fields: dict[str, Any] = json.loads(text)
    fields["format"] = ModelFormat(fields["format"])
    fields["model_type"] = ModelType(fields["model_type"])
    if fields.get("compression_type") is not None:
        fields["compression_type"] = CompressionType(fields["compression_type"])
    for key in ("tags", "dependencies", "dtypes", "input_shape", "output_shape"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return ModelMetadata(**fields)


def stats_from_json(text: str) -> RegistryStats:
    return RegistryStats(**json.loads(text))


def validation_from_json(text: str) -> ValidationReport:
    fields = json.loads(text)
    fields["errors"] = [ValidationProblem(**e) for e in fields["errors"]]
    return ValidationReport(**fields)
