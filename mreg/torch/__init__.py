"""PyTorch integration: datasets over one exact version of an mreg dataset, and model weights
from the registry into a module.

    from mreg.torch import LanceTorchDataset, LanceIterableDataset, load_into, loader
    train = LanceTorchDataset("flowers", rev="v1.0.0")            # (uint8 CHW tensor, int label)
    batches = loader(train, batch_size=64, shuffle=True, num_workers=4)
    load_into(model, "classifier", rev="v2.0.0")

``loader`` is ``torch.utils.data.DataLoader`` with workers started from a forkserver: Lance is
not fork-safe, and a worker forked from a process that has read Lance data is refused (a plain
DataLoader then needs ``multiprocessing_context="forkserver"``).

The names load on first use (PEP 562), so ``mreg.torch.source`` and ``mreg.torch.decode``, which
``mreg.tf`` shares, import without torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.lazy import lazy_attributes

if TYPE_CHECKING:
    from mreg.torch.dataset import LanceIterableDataset, LanceTorchDataset
    from mreg.torch.weights import load_into
    from mreg.torch.workers import loader

_HOMES = {
    "LanceTorchDataset": "mreg.torch.dataset",
    "LanceIterableDataset": "mreg.torch.dataset",
    "load_into": "mreg.torch.weights",
    "loader": "mreg.torch.workers",
}


__getattr__ = lazy_attributes(__name__, _HOMES)


__all__ = ["LanceIterableDataset", "LanceTorchDataset", "load_into", "loader"]
