"""The architecture holds: imports flow cli -> repo -> storage / converters, and starting the
CLI loads none of the heavy libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
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
    # The gRPC runtime loads with a server or client only (mreg.server, mreg.client).
    "grpc",
    "google.protobuf",
    "ray",
)

# Which mreg sub-packages each layer may import (besides the top-level helper modules).
ALLOWED = {
    "storage": {"storage"},
    "converters": {"converters"},
    "repo": {"repo", "storage", "converters"},
    # "client": the engine switch, ModelRegistry(engine="remote"), imported inside it.
    "registry": {"registry", "client", "repo", "storage", "converters"},
    "torch": {"torch", "repo", "storage", "converters"},
    # Ray shares mreg.torch's framework-neutral decoding (decode, source: no torch imported).
    "ray": {"ray", "torch", "repo", "storage", "converters"},
    "demo": {"demo", "torch", "registry", "repo", "storage", "converters"},
    # The gRPC modules generated from mreg/server/mreg.proto, and how entries travel in them.
    "protocol": {"protocol", "registry", "repo", "storage", "converters"},
    "server": {"server", "protocol", "registry", "repo", "storage", "converters"},
    # A remote client talks to a server over the wire only: never through mreg.server.
    "client": {"client", "protocol", "registry", "repo", "storage", "converters"},
    "cli": {"cli", "demo", "server", "client", "ray", "repo", "registry", "storage", "converters"},
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


# Import cycles inside one package (the modules of one folder, its __init__.py included).
# Every import statement counts: at module level, under ``if TYPE_CHECKING:`` and inside a
# function. A TYPE_CHECKING import still means the module's types name the other module, and a
# function-level import only hides a circle from the interpreter: either way neither module can
# be read, changed or tested without the other. Not counted: the implicit import of a package's
# __init__.py that Python runs before any of its submodules (``import mreg.repo.add`` runs
# ``mreg/repo/__init__.py``); ``from mreg.repo import Repo`` names __init__.py and counts.


def _module_file(name: str, root: Path) -> Path | None:
    """The file of module ``name`` under ``root`` (``mreg.repo`` -> mreg/repo/__init__.py)."""
    path = root.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_names(path: Path, root: Path) -> Iterator[str]:
    """Every module an import statement anywhere in ``path`` names (a submodule where
    ``from PACKAGE import NAME`` imports one, the package otherwise)."""
    package = _module_name(path if path.name == "__init__.py" else path.parent, root)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                above = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*above, base] if base else above)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if _module_file(submodule, root) else base


def _package_graph(folder: Path, root: Path = PACKAGE.parent) -> dict[Path, set[Path]]:
    """Which modules of the package in ``folder`` (under import root ``root``) each of its
    modules imports."""
    graph = {}
    for module in sorted(folder.glob("*.py")):
        targets = {_module_file(name, root) for name in _imported_names(module, root)}
        graph[module] = {t for t in targets if t and t.parent == folder and t != module}
    return graph


def _cycles(graph: dict[Path, set[Path]]) -> list[list[Path]]:
    """The strongly connected components of more than one module (Tarjan)."""
    order: dict[Path, int] = {}
    low: dict[Path, int] = {}
    stack: list[Path] = []
    found: list[list[Path]] = []

    def visit(node: Path) -> None:
        order[node] = low[node] = len(order)
        stack.append(node)
        for target in graph[node]:
            if target not in order:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], order[target])
        if low[node] == order[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in graph:
        if node not in order:
            visit(node)
    return found


PACKAGES = sorted(p.parent for p in PACKAGE.rglob("__init__.py"))


@pytest.mark.parametrize("folder", PACKAGES, ids=lambda f: str(f.relative_to(PACKAGE.parent)))
def test_no_package_has_an_import_cycle_between_its_modules(folder):
    cycles = [[str(m.relative_to(PACKAGE)) for m in c] for c in _cycles(_package_graph(folder))]
    assert not cycles, f"import cycles: {cycles}"


def test_the_cycle_check_finds_a_cycle_through_a_type_checking_import(tmp_path):
    package = tmp_path / "mreg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import b\n"
    )
    (package / "b.py").write_text("def f():\n    from mreg.a import f\n")
    (package / "c.py").write_text("import mreg.a\n")
    assert _cycles(_package_graph(package, tmp_path)) == [[package / "a.py", package / "b.py"]]


MAX_LINES = 300


@pytest.mark.parametrize("package", ["registry", "repo"])
def test_no_module_of_the_package_is_over_300_lines(package):
    long = {
        name: lines
        for module in sorted((PACKAGE / package).glob("*.py"))
        if (lines := len(module.read_text().splitlines())) > MAX_LINES
        and (name := str(module.relative_to(PACKAGE)))
    }
    assert not long, f"modules over {MAX_LINES} lines (split them along their concepts): {long}"


# The modules of mreg/repo that Repo delegates its verbs to. A verb composes shared modules
# (targets, restoration, download, ...), never another verb: what two verbs share moves into a
# module of its own, and verbs are combined in Repo.
VERBS = {
    "add", "checkout", "diff", "doctor", "fetch", "gc", "history", "hf_import", "install_git",
    "move", "opening", "pull", "push", "status", "url_import", "usage", "verify",
}  # fmt: skip


def test_the_verb_list_names_modules_that_exist():
    assert all((PACKAGE / "repo" / f"{verb}.py").is_file() for verb in VERBS)


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_no_verb_module_imports_another_verb(verb):
    folder = PACKAGE / "repo"
    imported = _package_graph(folder)[folder / f"{verb}.py"]
    others = sorted(m.stem for m in imported if m.stem in VERBS)
    assert not others, f"repo/{verb}.py imports the verb module(s) {others}: share a module"


def test_repo_keeps_to_construction_config_and_one_line_verbs():
    tree = ast.parse((PACKAGE / "repo" / "__init__.py").read_text())
    (repo,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Repo"]
    lines = repo.end_lineno - repo.lineno + 1  # type: ignore[operator]
    assert lines < 200, f"Repo is {lines} lines: move what is not a one-line verb out of it"
