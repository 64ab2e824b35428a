"""The converter registry: every module of this package that defines ``CONVERTER`` is found.

A module named after its format (``safetensors.py`` for "safetensors") is found without
importing the others: checkout and pull look a converter up by the format a manifest records,
and importing every converter costs 0.1 s (pyarrow's readers) that a model restore never uses.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from pathlib import Path

from mreg.converters.base import Converter, DatasetConverter, ModelConverter
from mreg.errors import UnsupportedFormat

_NOT_CONVERTERS = {"base"}
# What a file or folder in no format mreg knows is tracked as (see ``detect``).
OPAQUE_FILE = "blob"
OPAQUE_DIR = "blob_dir"


@functools.cache
def all_converters() -> dict[str, Converter]:
    """Format name -> converter, for every converter module in this package."""
    found: dict[str, Converter] = {}
    for module_info in pkgutil.iter_modules(__path__):
        if module_info.name in _NOT_CONVERTERS:
            continue
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        converter = getattr(module, "CONVERTER", None)
        if converter is not None:
            found[converter.format] = converter
    return dict(sorted(found.items()))


def get(format_name: str) -> Converter:
    """The converter called ``format_name``; UnsupportedFormat lists the known ones."""
    named_after = _module_named(format_name)
    if named_after is not None:
        return named_after
    converters = all_converters()
    if format_name not in converters:
        raise UnsupportedFormat(
            f"unknown format '{format_name}'", hint=f"known formats: {', '.join(converters)}"
        )
    return converters[format_name]


@functools.cache
def _module_named(format_name: str) -> Converter | None:
    """The converter of the module called ``format_name``, if that module converts that format."""
    if format_name in _NOT_CONVERTERS or not format_name.isidentifier():
        return None
    if not any(info.name == format_name for info in pkgutil.iter_modules(__path__)):
        return None
    module = importlib.import_module(f"{__name__}.{format_name}")
    converter = getattr(module, "CONVERTER", None)
    return converter if getattr(converter, "format", None) == format_name else None


def detect(path: Path, opaque: bool = True) -> Converter:
    """The converter for ``path``: by suffix for a file, by content for a folder. A file whose
    suffix no format claims, and a folder no format recognises, are opaque bytes (``blob``,
    ``blob_dir``); with ``opaque=False`` they are refused (UnsupportedFormat)."""
    if path.is_dir():
        return _detect_folder(path, opaque)
    suffix = path.suffix.lower()
    for converter in all_converters().values():
        if suffix in converter.suffixes:
            return converter
    if opaque:
        return get(OPAQUE_FILE)
    known = sorted(s for c in all_converters().values() for s in c.suffixes)
    raise UnsupportedFormat(
        f"{path.name}: unsupported format '{suffix or '(no suffix)'}'",
        hint=f"supported: {' '.join(known)}; or pass --format",
    )


def opaque_reason(path: Path) -> str:
    """Why ``detect`` took ``path`` as opaque bytes, for the user."""
    if path.is_dir():
        return f"{path.name}/ is in no folder format mreg knows"
    if not path.suffix:
        return f"no format reads {path.name} (no suffix)"
    return f"no format reads '{path.suffix.lower()}'"


def _detect_folder(path: Path, opaque: bool) -> Converter:
    folders = [
        c for c in all_converters().values() if c.directory and (opaque or c.format != OPAQUE_DIR)
    ]
    for converter in sorted(folders, key=lambda c: -c.priority):
        if converter.matches(path):
            return converter
    raise UnsupportedFormat(
        f"{path.name}/ is a folder in no format mreg knows",
        hint=f"folder formats: {', '.join(c.format for c in folders) or 'none'}",
    )


__all__ = [
    "OPAQUE_DIR",
    "OPAQUE_FILE",
    "Converter",
    "DatasetConverter",
    "ModelConverter",
    "all_converters",
    "detect",
    "get",
    "opaque_reason",
]
