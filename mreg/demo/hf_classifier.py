"""A Transformers image-classification model as a plain ``nn.Module`` the registry can rebuild.

The registry rebuilds a PyTorch model from its class path and JSON constructor arguments.
``TransformersClassifier(config=...)`` takes the model's config as a JSON dict, builds the
architecture from it (no download), and returns logits, so the demo trains it like ResNet18.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# This module *is* a model class (an nn.Module subclass); only the demo pipeline and the
# registry's loader import it.
import torch  # noqa: TID253
from torch import nn  # noqa: TID253

from mreg.errors import UsageError, one_line


class TransformersClassifier(nn.Module):
    """``AutoModelForImageClassification`` built from ``config`` (a config's ``to_dict()``)."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__()
        from transformers import AutoConfig, AutoModelForImageClassification

        settings = dict(config)
        model_type = settings.pop("model_type", None)
        if not model_type:
            raise UsageError("a Transformers config needs its model_type")
        self.model = AutoModelForImageClassification.from_config(
            AutoConfig.for_model(model_type, **settings)
        )

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=pixel_values).logits

    @property
    def config(self) -> dict[str, Any]:
        """The constructor argument that rebuilds this architecture."""
        return _json_config(self.model.config)


def from_folder(folder: Path, num_classes: int) -> TransformersClassifier:
    """The pretrained model in ``folder`` (``save_pretrained`` layout), with a new head when
    its number of labels differs from ``num_classes``. Nothing is downloaded."""
    from transformers import AutoConfig, AutoModelForImageClassification

    try:
        config = AutoConfig.from_pretrained(folder, local_files_only=True)
        config.num_labels = num_classes
        pretrained = AutoModelForImageClassification.from_pretrained(
            folder, config=config, ignore_mismatched_sizes=True, local_files_only=True
        )
    except (OSError, ValueError, KeyError) as error:
        raise UsageError(
            f"{folder.name} is not a Transformers image-classification folder: {one_line(error)}"
        ) from None
    model = TransformersClassifier(_json_config(pretrained.config))
    model.model.load_state_dict(pretrained.state_dict(), strict=True)
    return model


def _json_config(config: Any) -> dict[str, Any]:
    """The config as plain JSON values, labels included (JSON keys are strings)."""
    settings: dict[str, Any] = config.to_dict()
    settings.pop("transformers_version", None)
    settings["id2label"] = {str(k): v for k, v in config.id2label.items()}
    return settings
