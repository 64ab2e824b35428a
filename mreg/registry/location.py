"""Where a registry lives: the mreg repository holding its path (set up for mreg on first use)
and the folder new models are written to; and the seed system's registry options."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from mreg.errors import NotARepository, RegistryError
from mreg.repo import Repo

ENV_PATH = "MODEL_REGISTRY_PATH"
DEFAULT_FOLDER = "models"
# The seed system's registry options: what each does here is in ModelRegistry's docstring.
OPTIONS = (
    "default_format",
    "cache_size",
    "auto_validate",
    "compression_threshold",
    "backup_enabled",
)
log = logging.getLogger("mreg.registry")


def check_options(options: dict[str, Any]) -> None:
    """RegistryError naming any option that is not one of the seed's ``OPTIONS``:
    ``default_format`` (the format of a model whose type does not tell it), ``cache_size``
    (loaded models kept, default ``$MODEL_REGISTRY_CACHE_SIZE`` or 0; see ``model_cache``);
    ``auto_validate``, ``compression_threshold`` and ``backup_enabled`` are accepted and change
    nothing: every load checks sha256 already, mreg stores tensors uncompressed in Lance, and
    git keeps every version. Actions are logged to ``mreg.registry``."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise RegistryError(
            f"unknown registry option {', '.join(unknown)}", hint=f"options: {', '.join(OPTIONS)}"
        )


def open_registry(path: str | Path | None, init: bool) -> tuple[Repo, Path]:
    """``(repository, registry folder)`` of ``path`` (default ``$MODEL_REGISTRY_PATH``, then the
    current directory; it need not exist yet). A path inside the repository is the folder;
    otherwise ``[registry] path`` in ``.mreg/config.toml``, or ``models/``."""
    chosen = Path(path or os.environ.get(ENV_PATH) or ".").resolve()
    existing = chosen
    while not existing.exists():
        existing = existing.parent
    repo = _open_repo(existing, init)
    configured = repo.config.shared.get("registry", {}).get("path", DEFAULT_FOLDER)
    explicit = path is not None or ENV_PATH in os.environ
    inside = explicit and chosen != repo.root
    return repo, chosen if inside else repo.root / configured


def _open_repo(start: Path, init: bool) -> Repo:
    """The mreg repository holding ``start``; with ``init``, a git work tree not set up for
    mreg yet is set up (``mreg init``)."""
    try:
        return Repo(start)
    except NotARepository:
        if not init:
            raise
    repo = Repo.init(start)  # NotARepository outside a git work tree, saying `git init`
    log.info("initialised mreg in %s", repo.root)
    return repo


def remote_client(engine: str | None, url: str | None, arguments: bool) -> Any:
    """The client of a server (``mreg.Client``) when ``engine`` is "remote", or when none is
    named, nothing else is passed and ``$MREG_SERVER_URL`` is set; None for a local registry."""
    url = url or os.environ.get("MREG_SERVER_URL")
    if engine == "remote" or (engine is None and url and not arguments):
        if not url:
            raise RegistryError("engine='remote' needs url=", hint="or set MREG_SERVER_URL")
        from mreg.client import Client

        return Client(url)
    if engine not in (None, "local"):
        raise RegistryError(f"unknown engine {engine!r}", hint="use 'local' or 'remote'")
    return None
