"""What JSON values from outside (request bodies, tools files, tool lists, chat messages) may hold,
checked without recursion, so that any nesting is safe to check.

Their nesting is bounded by the limits in limits.py; here a value is walked once for its depth and
its first non-finite number or lone surrogate, each named by its path (``messages[0].content``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Optional

from ..errors import OndeviceError, ToolSchemaError

# A path into a value, as a linked list (parent, key): built per node at no copying cost, written
# out only for an error.
Path = Optional[tuple[Any, Any]]


@dataclass(frozen=True)
class Scan:
    """One walk over a value: its nesting depth (a scalar is 0, ``{}`` is 1), the path to its deepest
    container, and its first defect (the path and what is wrong), if any."""

    depth: int
    deepest: Path
    defect: Optional[tuple[Path, str]]


def scan(value: Any) -> Scan:
    """Walk `value` iteratively (any depth is safe) for its depth and its first defect: a number
    JSON does not allow (NaN, Infinity) or text that is not UTF-8 (a lone surrogate, e.g. from the
    JSON escape "\\ud800"), in a key or a value."""
    depth, deepest, defect = 0, None, None
    stack: list[tuple[Any, int, Path]] = [(value, 1, None)]
    while stack:
        node, level, path = stack.pop()
        if isinstance(node, dict):
            items: Any = node.items()
        elif isinstance(node, (list, tuple)):
            items = enumerate(node)
        else:
            if defect is None:
                defect = _defect(node, path)
            continue
        if level > depth:
            depth, deepest = level, path
        for key, child in items:
            if defect is None and isinstance(key, str):
                defect = _defect(key, path)
            stack.append((child, level + 1, (path, key)))
    return Scan(depth, deepest, defect)


def _defect(node: Any, path: Path) -> Optional[tuple[Path, str]]:
    if isinstance(node, str):
        try:
            node.encode("utf-8")
        except UnicodeEncodeError as exc:
            return path, (f"holds text that is not valid UTF-8 ({node[max(0, exc.start - 20):exc.end]!r}: a lone "
                          "surrogate, e.g. from the JSON escape \"\\ud800\"): send UTF-8 text")
    elif isinstance(node, float) and not math.isfinite(node):
        return path, f"holds the number {node!r}, which JSON does not allow: use a finite number"
    return None


def path_text(path: Path, root: str = "") -> str:
    """A path as written in the messages: ``root`` then ``[0]`` for an index and ``.name`` for a key."""
    keys = []
    while path is not None:
        path, key = path
        keys.append(key)
    text = root
    for key in reversed(keys):
        if isinstance(key, int):
            text += f"[{key}]"
        elif isinstance(key, str) and key.isidentifier():
            text += f".{key}" if text else key
        else:
            text += f"[{key!r}]"
    return text


def check_json_value(value: Any, root: str, error: type[OndeviceError] = ToolSchemaError, document: str = "",
                     field: Optional[str] = None) -> Scan:
    """Refuse `value` (named `root`, inside `document` when it is part of one) with `error` naming the
    path when it holds a non-finite number or text that is not UTF-8; its scan otherwise. The error's
    `field` is the path, or `field` when given."""
    found = scan(value)
    if found.defect is not None:
        path, problem = found.defect
        where = path_text(path, root) or "the value"
        raise error(f"{document}: {where} {problem}" if document else f"{where} {problem}", field=field or where)
    return found


def check_tools_value(value: Any, where: str = "tools") -> None:
    """Refuse tools holding a non-finite number or text that is not UTF-8 (ToolSchemaError naming the path)."""
    check_json_value(value, where, ToolSchemaError)
