"""The architecture holds: imports flow cli -> repo -> storage / converters, and starting the
CLI loads none of the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "mreg"
# "git" is gitpython: only object reads (show, blob), tags and commits load it.
HEAVY = (
    "lance",
    "torch",
    "onnx",
    "onnxruntime",
    "transformers",
    "datasets",
    "pandas",
    "boto3",
    "git",
    "ray",
)

# Which mreg sub-packages each layer may import (besides the top-level helper modules).
ALLOWED = {
    "storage": {"storage"},
    "converters": {"converters"},
    "repo": {"repo", "storage", "converters"},
    "registry": {"registry", "repo", "storage", "converters"},
    "torch": {"torch", "repo", "storage", "converters"},
    # Ray shares mreg.torch's framework-neutral decoding (decode, source: no torch imported).
    "ray": {"ray", "torch", "repo", "storage", "converters"},
    "demo": {"demo", "torch", "registry", "repo", "storage", "converters"},
    "server": {"server", "registry", "repo", "storage", "converters"},
    "cli": {"cli", "demo", "server", "ray", "repo", "registry", "storage", "converters"},
}


def mreg_imports(path: Path) -> set[str]:
    """The mreg sub-packages a module imports (``mreg.repo.add`` -> ``repo``)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            parts = name.split(".")
            if parts[0] == "mreg" and len(parts) > 1 and (PACKAGE / parts[1]).is_dir():
                found.add(parts[1])
    return found


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_each_layer_imports_only_the_layers_below_it(layer):
    for module in sorted((PACKAGE / layer).rglob("*.py")):
        forbidden = mreg_imports(module) - ALLOWED[layer]
        assert not forbidden, f"{module.relative_to(PACKAGE)} imports mreg.{forbidden}"


@pytest.mark.parametrize("module", ["mreg", "mreg.cli"])
def test_importing_mreg_or_starting_the_cli_loads_no_heavy_library(module):
    code = f"import sys, {module}; print(','.join(m for m in {HEAVY!r} if m in sys.modules))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == ""
