"""voiced's modules import each other without cycles.

Every import counts, including those inside functions (a lazy import hides a cycle from the
interpreter, not from the design). Relative imports are resolved; `from pkg import name` is an
edge to the submodule pkg.name when there is one, else to pkg itself. A submodule's implicit
import of its parent package is not counted (every package has that).
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "voiced"


def modules() -> dict[str, tuple[Path, bool]]:
    """Dotted name -> (file, is a package __init__)."""
    found = {}
    for path in sorted((ROOT / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        found[".".join(parts[:-1] if is_package else parts)] = (path, is_package)
    return found


def import_graph() -> dict[str, dict[str, int]]:
    """Module -> {imported voiced module: line of the first such import}."""
    mods = modules()
    graph: dict[str, dict[str, int]] = {name: {} for name in mods}
    for name, (path, is_package) in mods.items():
        package = name.split(".") if is_package else name.split(".")[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    targets.append(sub if sub in mods else module)
            for target in targets:
                if target in mods and target != name:
                    graph[name].setdefault(target, node.lineno)
    return graph


def cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

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


def describe(graph: dict[str, dict[str, int]], component: list[str]) -> str:
    mods = modules()
    lines = [" <-> ".join(component)]
    for a in component:
        for b, line in sorted(graph[a].items()):
            if b in component:
                lines.append(f"    {a} -> {b}  ({mods[a][0].relative_to(ROOT)}:{line})")
    return "\n".join(lines)


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "voiced.engines.base" in graph["voiced.engines.factory"]          # from .base import ...
    assert "voiced.engines.stt_whisper" in graph["voiced.engines.factory"]   # inside build_stt()
    assert "voiced.models.whisper_fast" in graph["voiced.models.registry"]   # from . import whisper_fast


def test_no_import_cycles():
    graph = import_graph()
    found = cycles(graph)
    report = "\n".join(describe(graph, c) for c in found)
    print(report)
    assert not found, f"import cycles among voiced's modules:\n{report}"
