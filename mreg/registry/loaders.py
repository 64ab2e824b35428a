"""Format loaders: how a model object becomes a file mreg can track, and comes back.

A loader is any object with ``load``, ``save``, ``get_metadata`` and ``supported_formats`` (the
seed system's ``ModelLoader``); plug one in with ``registry.loaders[fmt] = MyLoader()``.
``save(model, model_path)`` receives a path without suffix inside the registry folder and returns
the path it wrote, which must be in a format ``mreg add`` knows (``.safetensors``, ``.pth``,
``.onnx``, a Transformers folder...). ``load(model_path)`` receives that file, restored from the
cache after its sha256 was checked.

Built-in loaders also define ``load_stored``, which loads straight from mreg's Lance data and
returns ``(model, tokenizer)``: PyTorch weights never pass through pickle, ONNX graphs never touch
the work tree, Transformers folders are restored into a temporary folder only.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, cast, runtime_checkable

from mreg import converters
from mreg.converters.base import ModelConverter
from mreg.errors import CorruptInput, ModelClassError, RegistryError, one_line
from mreg.registry import trust
from mreg.registry.types import ModelFormat

if TYPE_CHECKING:
    from mreg.registry.metadata import ModelMetadata
    from mreg.repo import Repo
    from mreg.repo.manifest import Manifest


@runtime_checkable
class ModelLoader(Protocol):
    def load(self, model_path: str, **kwargs: Any) -> Any:
        """The model stored at ``model_path``."""
        ...

    def save(self, model: Any, model_path: str, **kwargs: Any) -> str:
        """Write ``model`` at ``model_path`` plus a suffix; returns the path written."""
        ...

    def get_metadata(self, model: Any, model_path: str | None = None) -> dict[str, Any]:
        """Metadata to record (``framework``, ``model_class``, ...)."""
        ...

    def supported_formats(self) -> list[ModelFormat]: ...


@dataclass(frozen=True)
class StoredModel:
    """One registered version, as a loader reads it: from the cache, digests checked."""

    repo: Repo
    rev: str
    manifest: Manifest
    metadata: ModelMetadata
    # Modules whose classes loading may build (mreg.registry.trust).
    trusted: tuple[str, ...] = trust.BUILT_IN

    def state_dict(self) -> dict[str, Any]:
        return self.repo.load_state_dict(self.manifest.name, self.rev)

    def restored_bytes(self) -> bytes:
        """The artifact's single file, rebuilt in its original format."""
        converter = cast(ModelConverter, converters.get(self.manifest.source.format))
        dataset = self.repo.open(self.manifest.name, self.rev)
        buffer = io.BytesIO()
        from mreg.repo import tensor_reader

        tensors = tensor_reader.read_tensors(dataset, self.manifest)
        converter.write(tensors, self.manifest.source.restore_info, buffer)
        return buffer.getvalue()

    def restore_into(self, folder: Path) -> Path:
        """The artifact rebuilt under ``folder`` (a file or a folder); returns its path."""
        converter = cast(ModelConverter, converters.get(self.manifest.source.format))
        dataset = self.repo.open(self.manifest.name, self.rev)
        from mreg.repo import tensor_reader

        tensors = tensor_reader.read_tensors(dataset, self.manifest)
        target = folder / self.manifest.path
        if converter.directory:
            target.mkdir(parents=True)
            converter.write(tensors, self.manifest.source.restore_info, target)
        else:
            with target.open("wb") as out:
                converter.write(tensors, self.manifest.source.restore_info, out)
        return target


class PytorchLoader:
    """``nn.Module`` and state dicts, stored as safetensors (or ``.pth`` for checkpoints that
    hold more than tensors); modules are rebuilt from their recorded class and arguments."""

    def supported_formats(self) -> list[ModelFormat]:
        return [ModelFormat.PYTORCH, ModelFormat.SAFETENSORS]

    def save(self, model: Any, model_path: str, **kwargs: Any) -> str:
        import torch

        state = model.state_dict() if isinstance(model, torch.nn.Module) else model
        if not isinstance(state, dict):
            raise RegistryError(
                f"cannot register a {type(model).__name__} as a PyTorch model",
                hint="pass an nn.Module, a state dict, or a path to weights",
            )
        if all(isinstance(v, torch.Tensor) for v in state.values()):
            from safetensors.torch import save_file

            path = f"{model_path}.safetensors"
            save_file(_unshared(state), path)
            return path
        path = f"{model_path}.pth"
        torch.save(state, path)
        return path

    def get_metadata(self, model: Any, model_path: str | None = None) -> dict[str, Any]:
        import torch

        found: dict[str, Any] = {"framework": "torch", "framework_version": torch.__version__}
        if isinstance(model, torch.nn.Module):
            cls = type(model)
            if "<locals>" in cls.__qualname__:
                raise RegistryError(
                    f"{cls.__qualname__} is defined inside a function, so it cannot be "
                    "imported again to load the model",
                    hint="define the class at module level",
                )
            found["model_class"] = f"{cls.__module__}.{cls.__qualname__}"
        return found

    def load(self, model_path: str, **kwargs: Any) -> Any:
        """The state dict in ``model_path`` (safetensors, or ``.pth`` with weights_only)."""
        path = Path(model_path)
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(path), device=kwargs.get("device", "cpu"))
        from mreg.converters.pytorch import safe_torch_load

        return safe_torch_load(path)

    def load_stored(
        self, stored: StoredModel, device: str = "cpu", **kwargs: Any
    ) -> tuple[Any, None]:
        """The module rebuilt from its recorded class, else the state dict; no tokenizer."""
        return self._module_or_state(stored, device), None

    def _module_or_state(self, stored: StoredModel, device: str) -> Any:
        if stored.manifest.source.format == "pth" and stored.metadata.model_class is None:
            # A checkpoint with more than tensors: give back its structure, not a flat dict.
            return self.load_checkpoint(stored)
        state = stored.state_dict()
        if stored.metadata.model_class is None:
            return {k: v.to(device) for k, v in state.items()}
        model = build_module(
            stored.metadata.model_class, stored.metadata.init_kwargs, stored.trusted
        )
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as error:
            raise ModelClassError(
                f"{stored.metadata.model_class} does not fit the weights of "
                f"{stored.manifest.name}: {one_line(error)}",
                hint="check the class and its init_kwargs",
            ) from None
        return model.to(device).eval()

    def load_checkpoint(self, stored: StoredModel) -> Any:
        import torch

        from mreg.converters.pytorch import safe_torch_load

        with stored.repo.cache.staging() as folder:
            path = folder / "checkpoint.pth"
            path.write_bytes(stored.restored_bytes())
            checkpoint = safe_torch_load(path)
            # Materialise before the staging folder (and the memory map) goes away.
            return _cloned(checkpoint, torch)


class OnnxLoader:
    """ONNX ``ModelProto`` objects and ``.onnx`` files; loads an onnxruntime session."""

    def supported_formats(self) -> list[ModelFormat]:
        return [ModelFormat.ONNX]

    def save(self, model: Any, model_path: str, **kwargs: Any) -> str:
        import onnx

        if not isinstance(model, onnx.ModelProto):
            raise RegistryError(f"cannot register a {type(model).__name__} as an ONNX model")
        _check_onnx(model)
        path = f"{model_path}.onnx"
        onnx.save(model, path)
        return path

    def check_file(self, path: Path) -> None:
        """Refuse a file that ``onnx.checker`` rejects."""
        _check_onnx(str(path))

    def get_metadata(self, model: Any, model_path: str | None = None) -> dict[str, Any]:
        import onnx

        return {"framework": "onnx", "framework_version": onnx.__version__}

    def load(self, model_path: str, **kwargs: Any) -> Any:
        if kwargs.get("return_proto"):
            import onnx

            return onnx.load(model_path)
        return _session(model_path)

    def load_stored(
        self, stored: StoredModel, device: str = "cpu", **kwargs: Any
    ) -> tuple[Any, None]:
        """An onnxruntime session (``return_proto=True``: the ModelProto); no tokenizer."""
        data = stored.restored_bytes()
        if kwargs.get("return_proto"):
            import onnx

            return onnx.load_from_string(data), None
        return _session(data), None


def build_module(
    class_path: str, init_kwargs: dict[str, Any], trusted: tuple[str, ...] = trust.BUILT_IN
) -> Any:
    """An instance of ``module.Class`` built with ``init_kwargs``, when the class is a module
    class of a trusted module (see ``mreg.registry.trust``); ModelClassError if not."""
    target = trust.model_class(class_path, trusted)
    try:
        return target(**init_kwargs)
    except TypeError as error:
        raise ModelClassError(
            f"{class_path}({json.dumps(init_kwargs)}) failed: {one_line(error)}",
            hint="register the model with init_kwargs={...} giving its constructor arguments",
        ) from None


def _unshared(state: dict[str, Any]) -> dict[str, Any]:
    """Tensors safetensors can save: contiguous, on the CPU, none sharing memory."""
    seen: set[int] = set()
    out = {}
    for key, tensor in state.items():
        value = tensor.detach().cpu().contiguous()
        pointer = value.untyped_storage().data_ptr()
        if pointer in seen and value.numel():
            value = value.clone()
        seen.add(value.untyped_storage().data_ptr())
        out[key] = value
    return out


def _cloned(value: Any, torch: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, dict):
        return type(value)((k, _cloned(v, torch)) for k, v in value.items())
    if isinstance(value, list | tuple):
        return type(value)(_cloned(v, torch) for v in value)
    return value


def _check_onnx(model: Any) -> None:
    import onnx

    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, onnx.onnx_cpp2py_export.checker.ValidationError) as e:
        raise CorruptInput(f"the ONNX model fails onnx.checker: {one_line(e)}") from None


def _session(model: str | bytes) -> Any:
    try:
        import onnxruntime
    except ImportError:
        raise ImportError(
            "loading an ONNX model needs onnxruntime: pip install onnxruntime"
        ) from None
    return onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
