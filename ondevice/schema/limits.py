"""Bounds on untrusted input, checked before any costly work (JSON parsing, rendering, grammar building).

Every path that takes input from outside (the Python API, the CLI, the server) goes through these
checks; each limit is a `Settings` field and the error names it, so the caller knows what to raise.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..errors import ContextOverflowError, InputLimitError
from ..settings import Settings


def json_depth(value: Any) -> int:
    """Nesting depth of JSON containers (a scalar is 0, ``{}`` is 1); iterative, so any depth is safe."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            children: Any = node.values()
        elif isinstance(node, (list, tuple)):
            children = node
        else:
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in children)
    return deepest


def check_tool_limits(tools: Optional[Sequence[Any]], settings: Settings) -> None:
    """Refuse a tools list over `max_tools`, `max_schema_depth` (per tool) or `max_tools_bytes` (as JSON)."""
    if tools is None or not isinstance(tools, (list, tuple)):
        return  # the shape is normalize_tools' business
    if len(tools) > settings.max_tools:
        raise InputLimitError(
            f"expected at most {settings.max_tools} tools (setting max_tools), got {len(tools)}: "
            "pass only the tools this query may need, or raise max_tools"
        )
    for index, tool in enumerate(tools):
        depth = json_depth(tool)
        if depth > settings.max_schema_depth:
            name = _name_of(tool, index)
            raise InputLimitError(
                f"tool {name}: its definition nests {depth} levels deep, the limit is {settings.max_schema_depth} "
                "(setting max_schema_depth): flatten the schema or raise max_schema_depth"
            )
    size = len(json.dumps(tools, default=str).encode("utf-8"))
    if size > settings.max_tools_bytes:
        raise InputLimitError(
            f"the tools are {size} bytes as JSON, the limit is {settings.max_tools_bytes} (setting max_tools_bytes): "
            "pass fewer or shorter tools, or raise max_tools_bytes"
        )


def check_body_size(size: int, settings: Settings, where: str = "the JSON body") -> None:
    """Refuse a JSON document of `size` bytes over `max_body_bytes` (before reading or parsing it)."""
    if size > settings.max_body_bytes:
        raise InputLimitError(
            f"{where} is {size} bytes, the limit is {settings.max_body_bytes} (setting max_body_bytes): "
            "send less, or raise max_body_bytes"
        )


def parse_json_body(data: str | bytes, settings: Settings, where: str = "the JSON body") -> Any:
    """Parse a JSON document from outside: at most `max_body_bytes`, nesting Python can parse.

    Raises InputLimitError over a limit and ValueError (json.JSONDecodeError) when it is not JSON.
    """
    size = len(data.encode("utf-8") if isinstance(data, str) else data)
    check_body_size(size, settings, where)
    try:
        return json.loads(data, parse_constant=_no_constant)
    except RecursionError:  # Python's parser recurses per nesting level
        raise InputLimitError(f"{where} nests too deeply to read: flatten it") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def check_context_bytes(total_bytes: int, n_ctx: int, max_token_bytes: int) -> None:
    """Refuse text that cannot fit the context even at the longest token, before rendering or tokenizing it."""
    ceiling = n_ctx * max(1, max_token_bytes)
    if total_bytes > ceiling:
        raise ContextOverflowError(
            f"the query, history and tools are {total_bytes} bytes, more than a context of {n_ctx} tokens can hold "
            f"(at most {ceiling} bytes at {max_token_bytes} bytes per token): shorten them or raise n_ctx"
        )


def _name_of(tool: Any, index: int) -> str:
    if isinstance(tool, dict):
        inner = tool.get("function") if isinstance(tool.get("function"), dict) else tool
        if isinstance(inner.get("name"), str):
            return repr(inner["name"])
    return f"#{index}"
