"""Import layering: every module's imports parsed (ast); train and store never import extract, store never
imports train, and no two modules import each other, directly or through others.

setup.py maps the folders onto ``ebmc.*``, so path-based tools cannot see these imports; this test can.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = {"store": "ebmc.store", "extract": "ebmc.extract", "train": "ebmc.train"}
# (importing package, imported package): imports that would run the layers backwards
FORBIDDEN = {("ebmc.train", "ebmc.extract"), ("ebmc.store", "ebmc.train"), ("ebmc.store", "ebmc.extract")}


def _modules() -> dict[str, Path]:
    """Dotted name -> file of every module of the three packages (``pkg/__init__.py`` -> ``pkg``)."""
    found = {}
    for folder, name in PACKAGES.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            found[".".join((name, *parts))] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path], top_level: bool) -> set[str]:
    """The modules of ``modules`` that ``name`` imports: at module level only (what runs on import)
    when ``top_level``, else anywhere, function bodies included."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    nodes = tree.body if top_level else list(ast.walk(tree))
    targets: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import sub`` imports the submodule pkg.sub when there is one
            targets.update(f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names)
    resolved = set()
    for target in targets:
        while target and target not in modules:  # ebmc.store.Store -> ebmc.store
            target = target.rpartition(".")[0]
        if target and target != name:
            resolved.add(target)
    return resolved


def _graph(top_level: bool) -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules, top_level) for name, path in modules.items()}


def _package(module: str) -> str:
    return ".".join(module.split(".")[:2])


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_layers_never_import_backwards():
    graph = _graph(top_level=False)
    wrong = sorted(f"{a} imports {b}" for a, targets in graph.items() for b in targets
                   if (_package(a), _package(b)) in FORBIDDEN)
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("top_level", [True, False], ids=["module-level", "anywhere"])
def test_no_import_cycles(top_level):
    cycles = _cycles(_graph(top_level))
    assert not cycles, "\n".join(" <-> ".join(c) for c in cycles)


def test_graph_sees_relative_and_absolute_imports():
    """The test would pass vacuously if imports went unresolved."""
    graph = _graph(top_level=True)
    assert "ebmc.train.runs" in graph["ebmc.train.protocols.conditions"]  # from ..runs import
    assert "ebmc.store.atomic" in graph["ebmc.train.runs"]  # from ebmc.store import atomic
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
