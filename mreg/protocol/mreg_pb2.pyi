from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ListArtifactsRequest(_message.Message):
    __slots__ = ("kind",)
    KIND_FIELD_NUMBER: _ClassVar[int]
    kind: str
    def __init__(self, kind: _Optional[str] = ...) -> None: ...

class ArtifactRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: str
    def __init__(self, spec: _Optional[str] = ...) -> None: ...

class Artifact(_message.Message):
    __slots__ = ("name", "kind", "path", "rev", "manifest_toml")
    NAME_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_TOML_FIELD_NUMBER: _ClassVar[int]
    name: str
    kind: str
    path: str
    rev: str
    manifest_toml: str
    def __init__(self, name: _Optional[str] = ..., kind: _Optional[str] = ..., path: _Optional[str] = ..., rev: _Optional[str] = ..., manifest_toml: _Optional[str] = ...) -> None: ...

class ArtifactList(_message.Message):
    __slots__ = ("artifacts",)
    ARTIFACTS_FIELD_NUMBER: _ClassVar[int]
    artifacts: _containers.RepeatedCompositeFieldContainer[Artifact]
    def __init__(self, artifacts: _Optional[_Iterable[_Union[Artifact, _Mapping]]] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ("model_type", "filters")
    class FiltersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    FILTERS_FIELD_NUMBER: _ClassVar[int]
    model_type: str
    filters: _containers.ScalarMap[str, str]
    def __init__(self, model_type: _Optional[str] = ..., filters: _Optional[_Mapping[str, str]] = ...) -> None: ...

class ModelRequest(_message.Message):
    __slots__ = ("name", "version")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("query", "latest")
    QUERY_FIELD_NUMBER: _ClassVar[int]
    LATEST_FIELD_NUMBER: _ClassVar[int]
    query: str
    latest: bool
    def __init__(self, query: _Optional[str] = ..., latest: _Optional[bool] = ...) -> None: ...

class StageRequest(_message.Message):
    __slots__ = ("name", "version", "stage")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    stage: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., stage: _Optional[str] = ...) -> None: ...

class ValidateRequest(_message.Message):
    __slots__ = ("load",)
    LOAD_FIELD_NUMBER: _ClassVar[int]
    load: bool
    def __init__(self, load: _Optional[bool] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelEntry(_message.Message):
    __slots__ = ("name", "version", "tag", "commit", "registered_at", "manifest_path", "stages", "deprecated", "model_format", "model_type", "performance_metrics", "tags", "metadata_json")
    class PerformanceMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_FIELD_NUMBER: _ClassVar[int]
    MANIFEST_PATH_FIELD_NUMBER: _ClassVar[int]
    STAGES_FIELD_NUMBER: _ClassVar[int]
    DEPRECATED_FIELD_NUMBER: _ClassVar[int]
    MODEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    tag: str
    commit: str
    registered_at: str
    manifest_path: str
    stages: _containers.RepeatedScalarFieldContainer[str]
    deprecated: bool
    model_format: str
    model_type: str
    performance_metrics: _containers.ScalarMap[str, float]
    tags: _containers.RepeatedScalarFieldContainer[str]
    metadata_json: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., tag: _Optional[str] = ..., commit: _Optional[str] = ..., registered_at: _Optional[str] = ..., manifest_path: _Optional[str] = ..., stages: _Optional[_Iterable[str]] = ..., deprecated: _Optional[bool] = ..., model_format: _Optional[str] = ..., model_type: _Optional[str] = ..., performance_metrics: _Optional[_Mapping[str, float]] = ..., tags: _Optional[_Iterable[str]] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class EntryList(_message.Message):
    __slots__ = ("entries",)
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[ModelEntry]
    def __init__(self, entries: _Optional[_Iterable[_Union[ModelEntry, _Mapping]]] = ...) -> None: ...

class VersionList(_message.Message):
    __slots__ = ("versions",)
    VERSIONS_FIELD_NUMBER: _ClassVar[int]
    versions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, versions: _Optional[_Iterable[str]] = ...) -> None: ...

class TagList(_message.Message):
    __slots__ = ("tags",)
    TAGS_FIELD_NUMBER: _ClassVar[int]
    tags: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, tags: _Optional[_Iterable[str]] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("json", "ok")
    JSON_FIELD_NUMBER: _ClassVar[int]
    OK_FIELD_NUMBER: _ClassVar[int]
    json: str
    ok: bool
    def __init__(self, json: _Optional[str] = ..., ok: _Optional[bool] = ...) -> None: ...

class InfoReply(_message.Message):
    __slots__ = ("version", "accepts_writes", "caller")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    ACCEPTS_WRITES_FIELD_NUMBER: _ClassVar[int]
    CALLER_FIELD_NUMBER: _ClassVar[int]
    version: str
    accepts_writes: bool
    caller: str
    def __init__(self, version: _Optional[str] = ..., accepts_writes: _Optional[bool] = ..., caller: _Optional[str] = ...) -> None: ...

class DownloadRequest(_message.Message):
    __slots__ = ("target", "offset")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    target: str
    offset: int
    def __init__(self, target: _Optional[str] = ..., offset: _Optional[int] = ...) -> None: ...

class ExportRequest(_message.Message):
    __slots__ = ("name", "version", "format")
    NAME_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    name: str
    version: str
    format: str
    def __init__(self, name: _Optional[str] = ..., version: _Optional[str] = ..., format: _Optional[str] = ...) -> None: ...

class FileChunk(_message.Message):
    __slots__ = ("offset", "data", "name", "size", "sha256")
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    SHA256_FIELD_NUMBER: _ClassVar[int]
    offset: int
    data: bytes
    name: str
    size: int
    sha256: str
    def __init__(self, offset: _Optional[int] = ..., data: _Optional[bytes] = ..., name: _Optional[str] = ..., size: _Optional[int] = ..., sha256: _Optional[str] = ...) -> None: ...

class RowsRequest(_message.Message):
    __slots__ = ("name", "rev", "columns", "filter", "offset", "limit", "batch_size")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REV_FIELD_NUMBER: _ClassVar[int]
    COLUMNS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    name: str
    rev: str
    columns: _containers.RepeatedScalarFieldContainer[str]
    filter: str
    offset: int
    limit: int
    batch_size: int
    def __init__(self, name: _Optional[str] = ..., rev: _Optional[str] = ..., columns: _Optional[_Iterable[str]] = ..., filter: _Optional[str] = ..., offset: _Optional[int] = ..., limit: _Optional[int] = ..., batch_size: _Optional[int] = ...) -> None: ...

class RowBatch(_message.Message):
    __slots__ = ("arrow_ipc",)
    ARROW_IPC_FIELD_NUMBER: _ClassVar[int]
    arrow_ipc: bytes
    def __init__(self, arrow_ipc: _Optional[bytes] = ...) -> None: ...

class UploadFile(_message.Message):
    __slots__ = ("path", "size")
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    path: str
    size: int
    def __init__(self, path: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class UploadHeader(_message.Message):
    __slots__ = ("name", "files", "folder", "version", "model_format", "model_type", "performance_metrics", "metadata_json")
    class PerformanceMetricsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    FOLDER_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FORMAT_FIELD_NUMBER: _ClassVar[int]
    MODEL_TYPE_FIELD_NUMBER: _ClassVar[int]
    PERFORMANCE_METRICS_FIELD_NUMBER: _ClassVar[int]
    METADATA_JSON_FIELD_NUMBER: _ClassVar[int]
    name: str
    files: _containers.RepeatedCompositeFieldContainer[UploadFile]
    folder: bool
    version: str
    model_format: str
    model_type: str
    performance_metrics: _containers.ScalarMap[str, float]
    metadata_json: str
    def __init__(self, name: _Optional[str] = ..., files: _Optional[_Iterable[_Union[UploadFile, _Mapping]]] = ..., folder: _Optional[bool] = ..., version: _Optional[str] = ..., model_format: _Optional[str] = ..., model_type: _Optional[str] = ..., performance_metrics: _Optional[_Mapping[str, float]] = ..., metadata_json: _Optional[str] = ...) -> None: ...

class UploadMessage(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: UploadHeader
    chunk: bytes
    def __init__(self, header: _Optional[_Union[UploadHeader, _Mapping]] = ..., chunk: _Optional[bytes] = ...) -> None: ...
