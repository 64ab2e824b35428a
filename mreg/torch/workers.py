"""DataLoaders whose workers are safe with Lance: started from a forkserver, never forked from a
process that has run Lance.

Lance is not fork-safe: a worker forked from a process whose Lance threads are running inherits
their locks and state half-way (with Lance 14, 7 of 40 DataLoaders forked that way hung in
``take``, and a worker died of a corrupted heap). A forkserver is a fresh process that has
imported torch and Lance but never run Lance; each worker forks from it in a fraction of a
second and opens its own dataset. ``Reader`` refuses, by name, to read in a worker forked from a
process that had read Lance data (``mreg.torch.source``).
"""

from __future__ import annotations

from typing import Any

# mreg.torch is the torch integration: only a user who imports it loads torch, never `import mreg`.
import torch.multiprocessing  # noqa: TID253
from torch.utils.data import DataLoader  # noqa: TID253

# Imported by the forkserver before it forks any worker (see that module).
PRELOAD = ["mreg.torch.forkserver"]


def loader(dataset: Any, batch_size: int | None = 1, **kwargs: Any) -> DataLoader[Any]:
    """``torch.utils.data.DataLoader(dataset, batch_size, **kwargs)``, with workers (when
    ``num_workers > 0``) started from a forkserver unless ``multiprocessing_context`` is given."""
    if kwargs.get("num_workers", 0) > 0 and kwargs.get("multiprocessing_context") is None:
        kwargs["multiprocessing_context"] = worker_context()
    return DataLoader(dataset, batch_size=batch_size, **kwargs)


def worker_context() -> Any:
    """The multiprocessing context for DataLoader workers: a forkserver that has torch, Lance and
    mreg.torch imported (spawn where there is no forkserver)."""
    if "forkserver" not in torch.multiprocessing.get_all_start_methods():
        return torch.multiprocessing.get_context("spawn")
    context = torch.multiprocessing.get_context("forkserver")
    # Takes effect when the forkserver starts (the first such DataLoader), never after.
    context.set_forkserver_preload(PRELOAD)
    return context
