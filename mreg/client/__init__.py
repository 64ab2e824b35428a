"""``mreg.Client``: the registry and data of an ``mreg serve`` over HTTP, with the local API's
names and return types (``ModelEntry``, ``ValidationReport``, ``RegistryStats``...).

``Client("grpc://host:port")`` gives the gRPC client (``mreg.client.grpc_client``) instead.
Downloads are parallel ranged GETs into one file beside the target (``mreg.client.ranged``); a
re-run resumes by Range, and the file is handed over only after its sha256 matches the server's.
"""

from __future__ import annotations

import dataclasses
import json
import os
import typing
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from mreg.client.answers import ServerError, checked
from mreg.client.remote import RemoteRegistry
from mreg.errors import MregError

if TYPE_CHECKING:
    import pyarrow as pa

    from mreg.registry.entries import ModelEntry, ModelSummary
    from mreg.registry.stats import RegistryStats
    from mreg.registry.validate import ValidationReport

__all__ = ["Client", "HttpClient", "ServerError"]

API = "/api/v1"
ENV_URL = "MREG_SERVER_URL"
ENV_TOKEN = "MREG_SERVER_TOKEN"


def Client(url: str, token: str | None = None) -> Any:
    """The client of the server at ``url``: HTTP(S), or gRPC for ``grpc://``."""
    if url.startswith("grpc://"):
        from mreg.client import grpc_client

        return grpc_client.GrpcClient(url, token)
    return HttpClient(url, token)


class HttpClient(RemoteRegistry):
    """The REST client; see ``mreg.Client``."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        timeout: float = 60.0,
        trusted_modules: list[str] | None = None,
    ) -> None:
        import httpx

        self.url = url.rstrip("/")
        self.trusted_modules = trusted_modules or []
        token = token or os.environ.get(ENV_TOKEN)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    # -- registry ------------------------------------------------------------------------

    def entry(self, name: str, version: str = "latest") -> ModelEntry:
        """``get_model_info`` that raises ModelNotFound with the server's reason."""
        from mreg.registry.entries import ModelEntry

        return from_plain(ModelEntry, self._json("GET", f"/models/{_q(name)}", version=version))

    def list_models(self, model_type: str | None = None, **filters: Any) -> list[ModelEntry]:
        from mreg.registry.entries import ModelEntry

        params = {**filters, **({"model_type": str(model_type)} if model_type else {})}
        return [from_plain(ModelEntry, e) for e in self._json("GET", "/versions", **params)]

    def models(self) -> list[ModelSummary]:
        from mreg.registry.entries import ModelSummary

        return [from_plain(ModelSummary, s) for s in self._json("GET", "/models")]

    def search(self, query: str, latest: bool = False) -> list[ModelEntry]:
        from mreg.registry.entries import ModelEntry

        found = self._json("GET", "/search", q=query, latest=str(latest).lower())
        return [from_plain(ModelEntry, e) for e in found]

    def versions(self, name: str) -> list[str]:
        return [e.version for e in self.list_models(name=name)]

    def register_model(
        self, name: str, model: str | Path, model_format: str | None = None,
        model_type: str | None = None, version: str | None = None, **metadata: Any,
    ) -> ModelEntry:  # fmt: skip
        """Upload the weights file at ``model`` and register it as a new version."""
        from mreg.registry.entries import ModelEntry

        path = Path(model)
        if not path.is_file():
            raise MregError(f"{path}: the client uploads a weights file", hint="pass its path")
        fields = {"metadata": json.dumps(metadata)}
        for key, value in (("model_format", model_format), ("model_type", model_type),
                           ("version", version)):  # fmt: skip
            if value:
                fields[key] = str(value)
        with open(path, "rb") as f:
            answer = self._http.post(
                f"{API}/models/{_q(name)}/versions", files={"file": (path.name, f)}, data=fields
            )
        return from_plain(ModelEntry, checked(answer).json())

    def stage(self, name: str, version: str, stage: str) -> str:
        body = {"version": version, "stage": stage}
        answer = self._http.post(f"{API}/models/{_q(name)}/stages", json=body)
        return str(checked(answer).json()["tag"])

    def unstage(self, name: str, stage: str) -> str:
        answer = self._http.delete(f"{API}/models/{_q(name)}/stages/{_q(stage)}")
        return str(checked(answer).json()["tag"])

    def deprecate(self, name: str) -> str:
        answer = self._http.post(f"{API}/models/{_q(name)}/deprecate")
        return str(checked(answer).json()["tag"])

    def remove_versions(self, name: str, version: str | None = None) -> list[str]:
        """Remove one version (or every one); the tags written. ModelNotFound if none is."""
        params = {"version": version} if version else {}
        answer = self._http.delete(f"{API}/models/{_q(name)}", params=params)
        return list(checked(answer).json()["tags"])

    def validate_registry(self, load: bool = True) -> ValidationReport:
        from mreg.registry.validate import ValidationReport

        return from_plain(ValidationReport, self._json("GET", "/validate", load=str(load).lower()))

    def stats(self) -> RegistryStats:
        from mreg.registry.stats import RegistryStats

        return from_plain(RegistryStats, self._json("GET", "/stats"))

    def export_model(
        self, name: str, version: str = "latest", export_path: str | Path = ".",
        export_format: str = "safetensors",
    ) -> Path:  # fmt: skip
        """The server exports; the file lands at ``export_path`` (a folder: under its name)."""
        url = f"{API}/models/{_q(name)}/export?version={_q(version)}&format={_q(export_format)}"
        return self._fetch(url, Path(export_path))

    # -- data ----------------------------------------------------------------------------

    def open(
        self, name: str, rev: str | None = None, columns: list[str] | None = None,
        filter: str | None = None, offset: int | None = None, limit: int | None = None,
    ) -> pa.RecordBatchReader:  # fmt: skip
        """The rows of a dataset version as Arrow batches, streamed (no download ahead)."""
        import pyarrow as pa

        spec = f"{name}@{rev}" if rev else name
        params: dict[str, Any] = {"columns": ",".join(columns or []), "filter": filter or "",
                                  "offset": offset, "limit": limit}  # fmt: skip
        params = {k: v for k, v in params.items() if v not in (None, "")}
        answer = self._http.get(f"{API}/artifacts/{_q(spec)}/rows", params=params)
        return pa.ipc.open_stream(checked(answer).content)

    def download(self, target: str, path: str | Path = ".") -> Path:
        """The file of ``target`` (``NAME``, ``NAME@vX.Y.Z``, ``NAME#STAGE``) at ``path`` (a
        folder: under the file's own name), in parallel ranged GETs, sha256 checked."""
        return self._fetch(f"{API}/artifacts/{_q(target)}/download", Path(path))

    def _fetch(self, url: str, path: Path) -> Path:
        from mreg.client import ranged

        with self._http.stream("GET", url, headers={"Range": "bytes=0-0"}) as head:
            checked(head, streamed=True)
            size = int(head.headers["content-range"].rsplit("/", 1)[1])
            sha256 = head.headers["x-mreg-sha256"]
            filename = head.headers.get("content-disposition", "").rpartition("filename=")[2]
        target = path / filename.strip('"') if path.is_dir() else path
        return ranged.fetch(self._http, url, target, size, sha256)

    def _json(self, method: str, path: str, **params: Any) -> Any:
        return checked(self._http.request(method, f"{API}{path}", params=params)).json()

    def close(self) -> None:
        self._http.close()


def _q(text: str) -> str:
    return quote(text, safe="@")


def from_plain(kind: Any, value: Any) -> Any:
    """``value`` (JSON) as ``kind``: dataclasses, tuples, lists, dicts, enums, optionals."""
    if value is None:
        return None
    origin = typing.get_origin(kind)
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        from mreg.registry.metadata import ModelMetadata

        hints = typing.get_type_hints(kind, localns={"ModelMetadata": ModelMetadata})
        names = {f.name for f in dataclasses.fields(kind) if f.init}
        return kind(**{k: from_plain(hints[k], v) for k, v in value.items() if k in names})
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        options = [a for a in typing.get_args(kind) if a is not type(None)]
        return from_plain(options[0], value) if len(options) == 1 else value
    if origin is tuple:
        args = typing.get_args(kind)
        return tuple(from_plain(args[0], v) for v in value) if args else tuple(value)
    if origin is list:
        return [from_plain(typing.get_args(kind)[0], v) for v in value]
    if origin is dict:
        return {k: from_plain(typing.get_args(kind)[1], v) for k, v in value.items()}
    if isinstance(kind, type) and issubclass(kind, Enum):
        return kind(value)
    return value
