"""Bounds on untrusted input, checked before any costly work (JSON parsing, rendering, grammar building).

Every path that takes input from outside (the Python API, the CLI, the server) goes through these
checks; each limit is a `Settings` field and the error names it, so the caller knows what to raise.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..errors import ContextOverflowError, InputLimitError, JSONInputError, QueryError
from ..settings import MAX_SCHEMA_DEPTH, Settings
from .json_value import check_json_value, check_tools_value, path_text, scan

# How deep any JSON document from outside may nest. Several times what the limits below let through
# (a tool or an answer nests at most max_schema_depth <= MAX_SCHEMA_DEPTH), so that a part nesting
# too deep is mostly refused by the check that names it (a tool by its name); and about half Python's
# recursion limit, so that the recursive code a document meets before those checks (json.dumps in
# an error message, the server's own frames) never reaches it.
MAX_JSON_DEPTH = 512


def json_depth(value: Any) -> int:
    """Nesting depth of JSON containers (a scalar is 0, ``{}`` is 1); iterative, so any depth is safe."""
    return scan(value).depth


def check_tool_limits(tools: Optional[Sequence[Any]], settings: Settings) -> None:
    """Refuse a tools list over `max_tools`, `max_schema_depth` (per tool) or `max_tools_bytes` (as JSON),
    or holding what JSON cannot (see check_tools_value)."""
    if tools is None or not isinstance(tools, (list, tuple)):
        return  # the shape is normalize_tools' business
    if len(tools) > settings.max_tools:
        raise InputLimitError(
            f"expected at most {settings.max_tools} tools (setting max_tools), got {len(tools)}: "
            "pass only the tools this query may need, or raise max_tools"
        )
    check_tools_depth(tools, settings.max_schema_depth)
    check_tools_value(tools)  # before any template writes them out (a lone surrogate fails there, unnamed)
    size = len(json.dumps(tools, default=str).encode("utf-8"))
    if size > settings.max_tools_bytes:
        raise InputLimitError(
            f"the tools are {size} bytes as JSON, the limit is {settings.max_tools_bytes} (setting max_tools_bytes): "
            "pass fewer or shorter tools, or raise max_tools_bytes"
        )


def check_tools_depth(tools: Sequence[Any], limit: int) -> None:
    """Refuse a tool whose definition nests deeper than `limit` (InputLimitError naming the tool)."""
    for index, tool in enumerate(tools):
        depth = json_depth(tool)
        if depth > limit:
            raise InputLimitError(
                f"tool {_name_of(tool, index)}: its definition nests {depth} levels deep, the limit is {limit} "
                f"(setting max_schema_depth, at most {MAX_SCHEMA_DEPTH}): flatten the schema or raise max_schema_depth",
                field=f"tools[{index}]"
            )


def check_body_size(size: int, settings: Settings, where: str = "the JSON body") -> None:
    """Refuse a JSON document of `size` bytes over `max_body_bytes` (before reading or parsing it)."""
    if size > settings.max_body_bytes:
        raise InputLimitError(
            f"{where} is {size} bytes, the limit is {settings.max_body_bytes} (setting max_body_bytes): "
            "send less, or raise max_body_bytes"
        )


def parse_json_body(data: str | bytes, settings: Settings, where: str = "the JSON body") -> Any:
    """Parse a JSON document from outside: at most `max_body_bytes`, UTF-8, no NaN or Infinity, no
    text that is not UTF-8 (lone surrogate escapes), at most MAX_JSON_DEPTH levels deep.

    Every document ondevice reads from outside goes through here. Raises InputLimitError over a
    limit, JSONInputError when it is not JSON; both name the part at fault in `field`.
    """
    size = len(data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data)
    check_body_size(size, settings, where)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")  # a byte-order mark is allowed (RFC 8259), as json.loads allows it
        except UnicodeDecodeError as exc:
            raise JSONInputError(f"{where} is not UTF-8: byte {exc.object[exc.start]:#04x} at offset {exc.start} "
                                 "cannot be decoded; send it as UTF-8") from None
    value = load_json(data, where)
    found = check_json_value(value, "", JSONInputError, where)
    if found.depth > MAX_JSON_DEPTH:
        part = path_text(found.deepest)
        raise InputLimitError(f"{where} nests {found.depth} levels deep (at {_shortened(part)}), the limit is "
                              f"{MAX_JSON_DEPTH}: flatten it", field=part or None)
    return value


def load_json(text: str, where: str) -> Any:
    """`json.loads`, refusing NaN and Infinity; a JSONInputError when `text` is not JSON, an
    InputLimitError when it nests too deeply for Python's parser (see parse_json_body for the rest)."""
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:  # Python's parser recurses per nesting level
        raise InputLimitError(f"{where} nests too deeply to read (the limit is {MAX_JSON_DEPTH} levels): "
                              "flatten it") from None
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") \
            from None
    except ValueError as exc:  # NaN/Infinity, or an integer too long to convert
        raise JSONInputError(f"{where} is not valid JSON: {exc}") from None


def check_schema_depth(schema: Any, limit: int, what: str, field: str) -> None:
    """Refuse a JSON Schema (a response format's) nesting deeper than `limit` (the setting max_schema_depth)."""
    depth = json_depth(schema)
    if depth > limit:
        raise InputLimitError(
            f"{what}: its schema nests {depth} levels deep, the limit is {limit} "
            f"(setting max_schema_depth, at most {MAX_SCHEMA_DEPTH}): flatten the schema or raise max_schema_depth",
            field=field
        )


def check_messages(messages: Any, settings: Settings, root: str = "messages") -> None:
    """Refuse chat messages holding text that is not UTF-8 (QueryError), or tool-call arguments
    nesting deeper than `max_schema_depth` (an answer nests no deeper than its tool's schema), each
    error naming the part (``messages[0].content``). The messages' shape is the format's business."""
    check_json_value(messages, root, QueryError)
    if not isinstance(messages, (list, tuple)):
        return
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for j, call in enumerate(calls if isinstance(calls, (list, tuple)) else []):
            function = call.get("function", call) if isinstance(call, dict) else None
            if not isinstance(function, dict):
                continue
            where, arguments = f"{root}[{i}].tool_calls[{j}].function.arguments", function.get("arguments")
            if isinstance(arguments, str):
                try:
                    arguments = load_json(arguments, where)
                except JSONInputError:
                    continue  # arguments that are not JSON are text to the template, as deep as they are long
                check_json_value(arguments, "", QueryError, where)
            check_arguments_depth(arguments, settings, where)


def check_arguments_depth(arguments: Any, settings: Settings, where: str) -> None:
    """Refuse a tool call's arguments nesting deeper than `max_schema_depth` (InputLimitError naming `where`)."""
    depth = json_depth(arguments)
    if depth > settings.max_schema_depth:
        raise InputLimitError(
            f"{where} nests {depth} levels deep, the limit is {settings.max_schema_depth} (setting max_schema_depth): "
            "no tool's answer nests that deep; send the arguments the model wrote", field=where
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _shortened(path: str, keep: int = 60) -> str:
    return path if len(path) <= keep else path[:keep] + "..."


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
