"""ResNet18 in plain PyTorch, with torchvision's parameter names and shapes.

torchvision has no CPU build on these machines, so the demo carries its own ResNet18. Every
parameter and buffer has the name and shape torchvision's ``resnet18`` gives it (``conv1``,
``bn1``, ``layer1``..``layer4`` of ``BasicBlock`` with ``conv1/bn1/conv2/bn2`` and
``downsample.0/.1``, ``fc``), so ``resnet18-f37072fd.pth`` loads into it with ``strict=True``.
"""

from __future__ import annotations

from collections.abc import Mapping

# This module *is* a model: its classes subclass nn.Module, so torch loads with it. Only the
# training pipeline and the registry's loader import it, never the CLI at start-up.
import torch  # noqa: TID253
from torch import nn  # noqa: TID253

from mreg.errors import UsageError

IMAGENET_CLASSES = 1000
WIDTHS = (64, 128, 256, 512)
BLOCKS_PER_LAYER = 2


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a residual connection (torchvision's ``BasicBlock``)."""

    expansion = 1

    def __init__(self, inplanes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet18 for ``num_classes`` classes; its state dict matches torchvision's key for key.

    Initialised as torchvision initialises it (Kaiming normal convolutions, unit BatchNorm), so
    a fresh model trains the way a fresh torchvision ``resnet18()`` does.
    """

    def __init__(self, num_classes: int = IMAGENET_CLASSES) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(3, WIDTHS[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(WIDTHS[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inplanes = WIDTHS[0]
        for index, planes in enumerate(WIDTHS, start=1):
            stride = 1 if index == 1 else 2
            blocks = [BasicBlock(inplanes, planes, stride)]
            blocks += [BasicBlock(planes, planes) for _ in range(BLOCKS_PER_LAYER - 1)]
            setattr(self, f"layer{index}", nn.Sequential(*blocks))
            inplanes = planes
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        self._initialise()

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.constant_(module.weight, 1)
                nn.init.constant_(module.bias, 0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for index in range(1, len(WIDTHS) + 1):
            x = getattr(self, f"layer{index}")(x)
        return self.fc(torch.flatten(self.avgpool(x), 1))

    def replace_head(self, num_classes: int) -> None:
        """A new, freshly initialised ``fc`` for ``num_classes`` classes (fine-tuning)."""
        self.fc = nn.Linear(WIDTHS[-1], num_classes)
        self.num_classes = num_classes


def from_state_dict(state: Mapping[str, torch.Tensor], num_classes: int, source: str) -> ResNet18:
    """A ResNet18 holding ``state`` (loaded strictly), with an ``fc`` for ``num_classes``.

    The state's own head decides how many classes it is loaded with (1000 for ImageNet
    weights); a different ``num_classes`` then gets a new head. UsageError, naming ``source``,
    when the weights are not a ResNet18's.
    """
    head = state.get("fc.weight")
    if head is None or head.ndim != 2:
        raise UsageError(f"{source} is not a ResNet18 state dict: it has no fc.weight")
    model = ResNet18(num_classes=int(head.shape[0]))
    try:
        model.load_state_dict(dict(state), strict=True)
    except RuntimeError as error:
        # PyTorch lists the missing, unexpected and misshapen keys on separate lines.
        reason = " ".join(str(error).split()).removeprefix(
            "Error(s) in loading state_dict for ResNet18: "
        )
        raise UsageError(f"{source} does not load into ResNet18: {reason[:300]}") from None
    if model.num_classes != num_classes:
        model.replace_head(num_classes)
    return model
