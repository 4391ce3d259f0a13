"""What JSON values we accept from users (tools files, tool lists) may hold, checked without recursion.

(Their nesting is bounded by the setting max_schema_depth, in limits.py.)"""

from __future__ import annotations

import math
from typing import Any

from ..errors import ToolSchemaError


def check_tools_value(value: Any, where: str = "tools") -> None:
    """Refuse non-finite numbers (NaN, Infinity) and strings that are not UTF-8 (lone surrogates from
    a JSON escape such as "\\ud800")."""
    stack: list[Any] = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                _check_text(key, where)
                stack.append(item)
        elif isinstance(node, (list, tuple)):
            stack.extend(node)
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
