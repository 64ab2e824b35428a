"""Transformers models and their tokenizers.

``save`` writes the model with ``save_pretrained`` (safetensors weights and ``config.json``) and
the tokenizer with its own ``save_pretrained`` into one folder, which ``mreg add`` tracks as a
``transformers`` folder artifact. The model's class is recorded (``transformers.BertModel``; for
a folder registered by path, from ``config.json``'s ``architectures``), and ``load_stored``
restores the folder from the digest-checked cache into a temporary folder, then calls that class's
``from_pretrained`` and, when tokenizer files are there, ``AutoTokenizer.from_pretrained``.
Nothing is ever downloaded: both read the local folder only.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mreg.errors import ModelClassError, RegistryError, one_line
from mreg.registry import trust
from mreg.registry.loaders import StoredModel
from mreg.registry.types import ModelFormat

AUTO_CLASS = "transformers.AutoModel"
CONFIG = "config.json"
# Any of these in the folder means a tokenizer was saved with the model.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
)


class TransformersLoader:
    """``PreTrainedModel`` objects (with an optional tokenizer) and ``save_pretrained`` folders."""

    def supported_formats(self) -> list[ModelFormat]:
        return [ModelFormat.HUGGINGFACE]

    def save(
        self,
        model: Any,
        model_path: str,
        tokenizer: Any = None,
        max_shard_size: str | int | None = None,
        **kwargs: Any,
    ) -> str:
        """The folder ``model_path`` holding the model (in shards of at most
        ``max_shard_size``, if given) and, if given, its tokenizer."""
        if not (hasattr(model, "save_pretrained") and hasattr(model, "config")):
            raise RegistryError(
                f"cannot register a {type(model).__name__} as a Transformers model",
                hint="pass a PreTrainedModel, or the path of a folder written by save_pretrained",
            )
        folder = Path(model_path)
        folder.mkdir()
        # safetensors is save_pretrained's default: the weights never become a pickle.
        shards = {} if max_shard_size is None else {"max_shard_size": max_shard_size}
        model.save_pretrained(folder, **shards)
        if tokenizer is not None:
            tokenizer.save_pretrained(folder)
        return str(folder)

    def get_metadata(self, model: Any, model_path: str | None = None) -> dict[str, Any]:
        """Framework, version, and the class ``load`` will call ``from_pretrained`` on."""
        import transformers

        found: dict[str, Any] = {
            "framework": "transformers",
            "framework_version": transformers.__version__,
        }
        if model is not None:
            found["model_class"] = class_path_of(model, transformers)
        elif model_path is not None:
            found["model_class"] = configured_class(Path(model_path))
        return found

    def load(self, model_path: str, **kwargs: Any) -> Any:
        """The model in the folder ``model_path`` (the recorded ``model_class``, else the class
        its config names, else ``AutoModel``), on ``device``, in eval mode."""
        folder = Path(model_path)
        class_path = kwargs.get("model_class") or configured_class(folder) or AUTO_CLASS
        model_class = _pretrained_class(class_path, kwargs.get("trusted", trust.BUILT_IN))
        try:
            model = model_class.from_pretrained(
                folder, use_safetensors=_has_safetensors(folder), local_files_only=True
            )
        except (OSError, ValueError, RuntimeError) as error:
            raise ModelClassError(
                f"{class_path}.from_pretrained failed: {one_line(error)}",
                hint="check that the class fits the model's config.json",
            ) from None
        return model.to(kwargs.get("device", "cpu")).eval()

    def load_stored(
        self, stored: StoredModel, device: str = "cpu", **kwargs: Any
    ) -> tuple[Any, Any | None]:
        """``(model, tokenizer)``; the tokenizer is None when none was saved with the model."""
        with stored.repo.cache.staging() as staging:
            folder = stored.restore_into(staging)
            model = self.load(
                str(folder),
                device=device,
                model_class=stored.metadata.model_class,
                trusted=stored.trusted,
            )
            return model, load_tokenizer(folder)


def load_tokenizer(folder: Path) -> Any | None:
    """``AutoTokenizer.from_pretrained(folder)`` if the folder holds tokenizer files."""
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(folder, local_files_only=True)


def class_path_of(model: Any, transformers: Any) -> str:
    """``transformers.NAME`` for a class Transformers exports, else ``module.Class``."""
    cls = type(model)
    try:
        exported = getattr(transformers, cls.__name__, None)
    except ImportError:  # Transformers' lazy module fails on a backend it lacks
        exported = None
    if exported is cls:
        return f"transformers.{cls.__name__}"
    if "<locals>" in cls.__qualname__:
        raise RegistryError(
            f"{cls.__qualname__} is defined inside a function, so it cannot be imported again "
            "to load the model",
            hint="define the class at module level",
        )
    return f"{cls.__module__}.{cls.__qualname__}"


def configured_class(folder: Path) -> str | None:
    """``transformers.ARCH`` for the first architecture ``config.json`` names, if any."""
    try:
        config = json.loads((folder / CONFIG).read_bytes())
    except (OSError, ValueError):
        return None
    architectures = config.get("architectures") if isinstance(config, dict) else None
    if not architectures or not isinstance(architectures[0], str):
        return None
    return f"transformers.{architectures[0]}"


def _pretrained_class(class_path: str, trusted: tuple[str, ...]) -> Any:
    model_class = trust.model_class(class_path, trusted)
    if not hasattr(model_class, "from_pretrained"):
        raise ModelClassError(
            f"{class_path} is not a Transformers model class (it has no from_pretrained)",
            hint="register the model with model_class='transformers.SomeModelClass'",
        )
    return model_class


def _has_safetensors(folder: Path) -> bool:
    # A folder registered with only pytorch_model*.bin comes back as .bin files that mreg
    # wrote itself from digest-checked tensors: no foreign pickle can be in them.
    return any(folder.glob("*.safetensors"))
