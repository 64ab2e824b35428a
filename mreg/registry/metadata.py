"""A registered model's metadata, and how it lives in the manifest's ``[meta]`` table.

``[meta]`` holds strings only, so every field has one plain text form a reviewer can read in a
diff: numbers as text, lists and shapes as JSON arrays, each metric as ``metric.<name>``, each
free field as ``extra.<name>``. What mreg extracts itself (parameters, size, dtypes, ONNX inputs)
comes from the manifest's own tables.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from mreg.errors import RegistryError, one_line
from mreg.registry.types import CompressionType, ModelFormat, ModelType
from mreg.repo.index import ManifestFacts, facts_of
from mreg.repo.manifest import Manifest

TEXT_FIELDS = (
    "description",
    "author",
    "training_dataset",
    "training_framework",
    "license",
    "repository_url",
    "paper_url",
    "python_version",
)
LIST_FIELDS = ("tags", "dependencies")
SHAPE_FIELDS = ("input_shape", "output_shape")
FLOAT_FIELDS = ("compression_ratio", "original_size_mb")
METRIC = "metric."
EXTRA = "extra."
# Written by the registry itself, never taken from the caller's keyword arguments.
FORMAT_KEY = "model_format"
TYPE_KEY = "model_type"
CLASS_KEY = "model_class"
KWARGS_KEY = "init_kwargs"
RECORDED = ("framework", "framework_version", "code_commit", "training_dataset_version")
T = TypeVar("T")


@dataclass(frozen=True)
class ModelMetadata:
    """What the registry knows about one version (the seed system's ``ModelMetadata``)."""

    name: str
    version: str
    format: ModelFormat
    model_type: ModelType
    description: str | None = None
    author: str | None = None
    training_dataset: str | None = None
    training_dataset_version: str | None = None
    training_epochs: int | None = None
    training_framework: str | None = None
    performance_metrics: dict[str, float] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    input_shape: tuple[int, ...] | None = None
    output_shape: tuple[int, ...] | None = None
    compression_type: CompressionType | None = None
    compression_ratio: float | None = None
    original_size_mb: float | None = None
    dependencies: tuple[str, ...] = ()
    python_version: str | None = None
    license: str | None = None
    repository_url: str | None = None
    paper_url: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    # Extracted, not given.
    parameters_count: int = 0
    model_size_mb: float = 0.0
    dtypes: tuple[str, ...] = ()
    model_class: str | None = None
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    framework: str | None = None
    framework_version: str | None = None
    code_commit: str | None = None
    info: dict[str, str] = field(default_factory=dict)


def to_meta(fields: Mapping[str, Any]) -> dict[str, str]:
    """The caller's metadata keyword arguments as ``[meta]`` strings; unknown keys go to extra.

    RegistryError names a field whose value has the wrong type.
    """
    meta: dict[str, str] = {}
    for key, value in fields.items():
        if value is None:
            continue
        if key in TEXT_FIELDS:
            meta[key] = str(value)
        elif key == "training_epochs":
            meta[key] = str(_number(key, value, int))
        elif key in FLOAT_FIELDS:
            meta[key] = str(_number(key, value, float))
        elif key == "compression_type":
            meta[key] = CompressionType.parse(value).value
        elif key in LIST_FIELDS:
            meta[key] = json.dumps(_strings(key, value))
        elif key in SHAPE_FIELDS:
            meta[key] = json.dumps(_shape(key, value))
        elif key == "performance_metrics":
            meta.update(metrics_meta(value))
        elif key == "extra":
            meta.update(extra_meta(value))
        else:
            meta.update(extra_meta({key: value}))
    return meta


def metrics_meta(metrics: Any) -> dict[str, str]:
    if not isinstance(metrics, Mapping):
        raise RegistryError("performance_metrics must be a dict of metric name -> number")
    return {f"{METRIC}{k}": repr(_number(f"metric '{k}'", v, float)) for k, v in metrics.items()}


def extra_meta(extra: Any) -> dict[str, str]:
    if not isinstance(extra, Mapping):
        raise RegistryError("extra must be a dict")
    return {
        f"{EXTRA}{k}": v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        for k, v in extra.items()
    }


def from_manifest(manifest: Manifest, version: str) -> ModelMetadata:
    """The metadata ``manifest`` records for ``version``."""
    return from_facts(facts_of(manifest), version)


def from_facts(facts: ManifestFacts, version: str) -> ModelMetadata:
    """The metadata a manifest (seen through its ``facts``) records for ``version``.

    RegistryError names a field whose text does not parse (``init_kwargs`` that is not a JSON
    object, a metric that is not a number...): manifests come from anyone with push access."""
    meta = facts.meta
    texts = {key: meta[key] for key in (*TEXT_FIELDS, *RECORDED) if key in meta}
    field_of = _Fields(meta, f"{facts.name} {version}")
    return ModelMetadata(
        name=facts.name,
        version=version,
        format=ModelFormat.parse(meta.get(FORMAT_KEY, _format_of(facts.source_format))),
        model_type=ModelType.parse(meta.get(TYPE_KEY, "custom")),
        training_epochs=field_of("training_epochs", int),
        performance_metrics={
            k.removeprefix(METRIC): value
            for k in meta
            if k.startswith(METRIC) and (value := field_of(k, float)) is not None
        },
        tags=tuple(field_of("tags", _json_list) or ()),
        dependencies=tuple(field_of("dependencies", _json_list) or ()),
        input_shape=field_of("input_shape", _json_shape),
        output_shape=field_of("output_shape", _json_shape),
        compression_type=field_of("compression_type", CompressionType.parse),
        compression_ratio=field_of("compression_ratio", float),
        original_size_mb=field_of("original_size_mb", float),
        extra={k.removeprefix(EXTRA): v for k, v in meta.items() if k.startswith(EXTRA)},
        parameters_count=facts.parameters,
        model_size_mb=round(facts.size / 2**20, 3),
        dtypes=facts.dtypes,
        model_class=meta.get(CLASS_KEY) or None,
        init_kwargs=field_of(KWARGS_KEY, _json_object) or {},
        info=dict(facts.info),
        **texts,
    )


def check_meta(meta: Mapping[str, str]) -> None:
    """RegistryError when a ``[meta]`` field the registry reads does not parse."""
    from_facts(
        ManifestFacts("artifact", "model", dict(meta), 0, 0, (), {}, "safetensors"), "metadata"
    )


class _Fields:
    """Parses one ``[meta]`` field at a time, naming it when it does not parse."""

    def __init__(self, meta: Mapping[str, str], origin: str) -> None:
        self.meta = meta
        self.origin = origin

    def __call__(self, key: str, parse: Callable[[str], T]) -> T | None:
        text = self.meta.get(key)
        if not text:
            return None
        try:
            return parse(text)
        except (ValueError, TypeError) as error:
            raise RegistryError(
                f"{self.origin}: metadata {key} = {text[:60]!r} does not parse: "
                f"{one_line(error, 80)}",
                hint=f"give {key} in the form the registry writes (see `mreg show`)",
            ) from None


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"a JSON object is expected, not {type(value).__name__}")
    return value


def _format_of(source_format: str) -> str:
    """The registry format of an artifact added with ``mreg add`` (no ``model_format`` key)."""
    return {"pth": "pytorch", "transformers": "huggingface"}.get(source_format, source_format)


def _number(name: str, value: Any, kind: type[int] | type[float]) -> int | float:
    if isinstance(value, bool):
        raise RegistryError(f"{name} must be a number, not {value!r}")
    try:
        number = kind(value)
    except (TypeError, ValueError):
        raise RegistryError(f"{name} must be a number, not {value!r}") from None
    if kind is int and number != float(value):
        raise RegistryError(f"{name} must be a whole number, not {value!r}")
    return number


def _strings(name: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list | tuple | set) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RegistryError(f"{name} must be a list of strings, not {value!r}")


def _shape(name: str, value: Any) -> list[int]:
    if isinstance(value, str):
        value = [v for v in value.replace("x", ",").split(",") if v.strip()]
    try:
        return [int(v) for v in value]
    except (TypeError, ValueError):
        raise RegistryError(f"{name} must be a list of integers, not {value!r}") from None


def _json_list(text: str) -> list[str]:
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"a JSON list is expected, not {type(value).__name__}")
    return [str(v) for v in value]


def _json_shape(text: str) -> tuple[int, ...]:
    value = json.loads(text)
    if not isinstance(value, list):
        raise ValueError(f"a JSON list is expected, not {type(value).__name__}")
    return tuple(int(v) for v in value)
