"""Limits on JSON values we accept from users (tools files, tool lists), checked without recursion."""

from __future__ import annotations

import math
from typing import Any

from .errors import ToolSchemaError

# Real-world tool schemas nest far less (JSONSchemaBench's deepest: 27 levels); deeper input would
# only exhaust Python's or the grammar compiler's stack.
MAX_DEPTH = 100


def check_tools_value(value: Any, where: str = "tools") -> None:
    """Refuse tools nested deeper than MAX_DEPTH, non-finite numbers (NaN, Infinity) and strings
    that are not UTF-8 (lone surrogates from a JSON escape such as "\\ud800")."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ToolSchemaError(f"{where}: nested deeper than {MAX_DEPTH} levels: flatten the schema "
                                  "(or move repeated parts into $defs)")
        if isinstance(node, dict):
            for key, item in node.items():
                _check_text(key, where)
                stack.append((item, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_text(node, where)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ToolSchemaError(f"{where}: holds the number {node!r}, which JSON does not allow: use a finite number")


def _check_text(text: Any, where: str) -> None:
    if not isinstance(text, str):
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ToolSchemaError(f"{where}: holds a string that is not valid UTF-8 "
                              f"({text[max(0, exc.start - 20):exc.end]!r}): fix the escape or the encoding") from None
