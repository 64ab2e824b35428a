"""Imported once by the forkserver that starts the workers of ``mreg.torch.loader()``: torch and
Lance imported there (without running Lance, so without its threads) make every worker start in
a fraction of a second instead of importing them again."""

from __future__ import annotations

import warnings

import lance  # noqa: F401

# mreg.torch is the torch integration: only a user who imports it loads torch, never `import mreg`.
import torch  # noqa: F401, TID253

import mreg.torch.dataset  # noqa: F401

# Lance warns at every fork; this process never runs Lance, so its forks are the safe kind.
warnings.filterwarnings("ignore", message="lance is not fork-safe")
