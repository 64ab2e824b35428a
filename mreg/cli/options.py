"""Options shared by several commands, declared once.

Command modules import only typer, rich and this at start-up; what a command runs (the
repository, the registry) is imported inside the command, so that ``--help`` and every other
command do not pay for it."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, is_dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from mreg.terminal import SafeConsole, printable

if TYPE_CHECKING:
    from mreg.registry import DataManager, ModelRegistry
    from mreg.repo import Repo

stdout = SafeConsole(soft_wrap=True, highlight=False)

Targets = Annotated[
    list[str] | None,
    typer.Argument(help="Artifact names, NAME@VERSION / NAME@REV, or paths. Default: all."),
]
Remote = Annotated[str | None, typer.Option("--remote", "-r", help="Remote name.")]
Jobs = Annotated[int, typer.Option("--jobs", "-j", min=1, max=128, help="Parallel transfers.")]
Json = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def shown(value: object) -> str:
    """A value from a repository (a name, a path, metadata), ready to put in a printed line:
    control characters and newlines escaped, rich markup (``[link=...]``) made literal."""
    return escape(printable(str(value)))


def open_repo() -> Repo:
    from mreg.repo import Repo

    return Repo(".")


def open_registry() -> ModelRegistry:
    from mreg.registry import ModelRegistry

    if os.environ.get("MREG_SERVER_URL"):  # --server: the server's registry, no clone needed
        return ModelRegistry(engine="remote")
    # The CLI asks for `mreg init` as every other command does; the Python API runs it itself.
    return ModelRegistry(init=False)


def open_data_manager() -> DataManager:
    """The registry of both kinds: for the verbs that apply to datasets as to models."""
    from mreg.registry import DataManager

    return DataManager()


def print_json(value: Any) -> None:
    typer.echo(json.dumps(_plain(value), indent=2, sort_keys=False))


def _plain(value: Any) -> Any:
    if is_dataclass(value) and not isinstance(value, type):
        return _plain(asdict(value))
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"
