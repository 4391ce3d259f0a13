"""A format is one module: nothing outside ondevice/formats/ names a format's tags.

Every string literal of the runtime (docstrings aside: prose may show an answer) is checked against
the tags, stream heads and list frames of every registered format, and no module outside
ondevice/formats/ may import the tag constants."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import ondevice
from ondevice.formats import format_names, get_format

ROOT = Path(ondevice.__file__).parent
FORMATS = ROOT / "formats"


def _literals() -> set[str]:
    found = set()
    for name in format_names():
        fmt = get_format(name)
        # a one-character head ("[" of a bare JSON array) is JSON's own syntax, not a tag to look for
        found |= {t for t in (*fmt.tags, fmt.stream_head, *getattr(fmt, "list_frame", ())) if len(t) > 1}
    return found


def _outside_formats() -> list[Path]:
    return sorted(p for p in ROOT.rglob("*.py") if FORMATS not in p.parents)


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)
    return {id(n.body[0].value) for n in ast.walk(tree) if isinstance(n, nodes) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}


@pytest.mark.nomodel
def test_no_tag_literal_appears_outside_the_formats():
    literals = _literals()
    assert "<tool_call>" in literals  # the check knows the built-in formats' tags
    offenders = []
    for path in _outside_formats():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docs = _docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs:
                offenders += [f"{path.relative_to(ROOT.parent)}:{node.lineno}: {tag!r}"
                              for tag in literals if tag in node.value]
    assert not offenders, "a format's tag named outside ondevice/formats/ (ask the format):\n" + "\n".join(offenders)


@pytest.mark.nomodel
def test_only_the_formats_import_the_tag_constants():
    offenders = []
    for path in _outside_formats():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("tags"):
                offenders.append(f"{path.relative_to(ROOT.parent)}:{node.lineno}: from {node.module} import ...")
    assert not offenders, "\n".join(offenders)
