"""The ResNet18 demo: download, convert to Lance, push, train, evaluate and register, in one call.

    from mreg.demo import TrainOptions, train
    report = train(TrainOptions(offline=True, steps=30))
    print(report.registered, report.after.accuracy)

``mreg demo train`` and ``examples/train_resnet.py`` are thin shells over ``train``. Importing
this package is cheap: the pipeline (and the registry and repository under it) loads on first use
of ``train`` or ``TrainReport``; torch, Pillow, scikit-learn and ``datasets`` load inside the
functions that use them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mreg.demo.options import TrainOptions
from mreg.lazy import lazy_attributes

if TYPE_CHECKING:
    from mreg.demo.pipeline import TrainReport, train

__all__ = ["TrainOptions", "TrainReport", "train"]


__getattr__ = lazy_attributes(
    __name__, {"TrainReport": "mreg.demo.pipeline", "train": "mreg.demo.pipeline"}
)
