"""Whether the demo can reach the sources it would download from by default.

These machines and CI have no network: there, a run with default sources falls back to the
offline ones (scikit-learn's digits and a fresh ResNet18) and says so, instead of failing after
a round of retries.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

from mreg.demo.options import TrainOptions

PROBE_TIMEOUT_S = 3.0
HUB = "https://huggingface.co"


def online_or_offline(options: TrainOptions, say: Callable[[str], None]) -> TrainOptions:
    """``options``, made offline when a default source it needs cannot be reached.

    Only defaults fall back: a model or data set the user named is downloaded as asked, and a
    failure says why.
    """
    if options.offline:
        return options
    hosts = []
    if options.model is None and options.model_mode == "url":
        hosts.append(urlsplit(options.model_source or "").hostname or "")
    if options.dataset is None:
        hosts.append(urlsplit(os.environ.get("HF_ENDPOINT") or HUB).hostname or "")
    unreachable = [host for host in hosts if not reachable(host)]
    if not unreachable:
        return options
    say(
        f"{', '.join(unreachable)} cannot be reached: running offline (scikit-learn's digits, "
        "a fresh ResNet18); pass --offline to skip this check"
    )
    return options.offline_defaults()


def reachable(host: str, port: int = 443) -> bool:
    """Whether a TCP connection to ``host`` opens within PROBE_TIMEOUT_S, name lookup included
    (the probe runs on a thread: ``getaddrinfo`` has no timeout of its own)."""
    result: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, port), timeout=PROBE_TIMEOUT_S).close()
            result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(PROBE_TIMEOUT_S + 1)
    return bool(result and result[0])
