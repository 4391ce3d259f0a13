"""The package's import structure, read from the source with `ast` (no module is imported, no model
loads): no import cycle among ondevice's modules, and every module imports only from its own layer or
a lower one.

Every import counts: module-level, inside a function, under ``if TYPE_CHECKING``, relative or absolute.
Importing ``ondevice.a.b`` also runs the package ``ondevice.a`` (its ``__init__``), so that is an edge
too, unless the importer is inside ``ondevice.a`` itself.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.nomodel

PACKAGE = Path(__file__).resolve().parents[1] / "ondevice"

# Lowest first. A module belongs to the entry naming it or its nearest enclosing package; "ondevice"
# alone is the package's own __init__ (the public face, which re-exports the API).
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("errors", ("ondevice.errors",)),
    ("settings", ("ondevice.settings", "ondevice.paths", "ondevice.gguf", "ondevice.wait_policy",
                  "ondevice._crash_watch")),
    ("schema", ("ondevice.schema", "ondevice.structured", "ondevice.template", "ondevice.models")),
    ("grammar", ("ondevice.grammar",)),
    ("formats", ("ondevice.formats",)),
    ("engine", ("ondevice.engine",)),
    ("api", ("ondevice.api", "ondevice", "ondevice.crash", "ondevice.doctor", "ondevice.runner",
             "ondevice.mcp_client")),
    ("server and CLI", ("ondevice.server", "ondevice.cli", "ondevice.__main__")),
]

Edge = tuple[str, str, int]  # importer, imported, line


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def imported(name: str, path: Path, known: set[str]) -> list[tuple[str, int]]:
    """Every ondevice module `name` (at `path`) imports, with the line of the import."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:  # `from pkg import mod` imports the module pkg.mod
                found.append((f"{source}.{alias.name}" if f"{source}.{alias.name}" in known else source, node.lineno))
    return [(target, line) for target, line in found if target == "ondevice" or target.startswith("ondevice.")]


def edges() -> list[Edge]:
    """importer -> imported, with the packages whose __init__ the import runs first."""
    mods = modules()
    known = set(mods)
    out = []
    for name, path in mods.items():
        own = {".".join(name.split(".")[:k]) for k in range(1, name.count(".") + 2)}
        for target, line in imported(name, path, known):
            parts = target.split(".")
            for k in range(1, len(parts) + 1):
                step = ".".join(parts[:k])
                if step in known and step not in own:
                    out.append((name, step, line))
    return out


def cycles(graph: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm), each sorted."""
    succ: dict[str, set[str]] = {}
    for a, b, _ in graph:
        succ.setdefault(a, set()).add(b)
        succ.setdefault(b, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(succ[v]):
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

    for v in sorted(succ):
        if v not in index:
            visit(v)
    return found


def layer_of(name: str) -> int:
    """The index in LAYERS of the entry naming `name` or its nearest enclosing package."""
    best, depth = -1, -1
    for i, (_, members) in enumerate(LAYERS):
        for member in members:
            exact = member == "ondevice"
            if (name == member or (not exact and name.startswith(member + "."))) and len(member) > depth:
                best, depth = i, len(member)
    return best


def test_the_reader_sees_imports_of_every_kind(tmp_path):
    pkg = tmp_path / "ondevice"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "low.py").write_text("")
    (pkg / "sub" / "mod.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..low import x\n"
        "def f():\n    import ondevice.low\n    from . import other\n")
    (pkg / "sub" / "other.py").write_text("")
    name, path = "ondevice.sub.mod", pkg / "sub" / "mod.py"
    known = {"ondevice", "ondevice.sub", "ondevice.low", "ondevice.sub.mod", "ondevice.sub.other"}
    assert imported(name, path, known) == [("ondevice.low", 3), ("ondevice.low", 5), ("ondevice.sub.other", 6)]
    assert cycles([("a", "b", 1), ("b", "c", 1), ("c", "a", 1), ("c", "d", 1)]) == [["a", "b", "c"]]


def test_no_import_cycle():
    graph = edges()
    found = cycles(graph)
    report = []
    for component in found:
        inside = set(component)
        ties = sorted({f"{a} -> {b} (line {line})" for a, b, line in graph if a in inside and b in inside})
        report.append(f"a cycle of {len(component)} modules: {', '.join(component)}\n    " + "\n    ".join(ties))
    assert not found, "\n".join(report)


def test_every_module_has_a_layer():
    unplaced = [name for name in modules() if layer_of(name) < 0]
    assert not unplaced, f"modules in no layer (add them to LAYERS): {unplaced}"


def test_imports_only_go_down():
    upward = sorted({f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]}) at line {line}"
                     for a, b, line in edges() if layer_of(b) > layer_of(a) >= 0})
    assert not upward, "imports from a higher layer:\n" + "\n".join(upward)
