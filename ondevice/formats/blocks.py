"""What the tool formats share: reading tagged blocks (the model card's `parse_response`, made total,
plus typed tool calls), and checking calls against their tools.

Two formats, read into the same `ToolCall` list:
- ``card``: the fine-tune's one block holding a JSON list, ``<tool_call>[{"name": ..., "arguments": ...}, ...]</tool_call>``;
- ``native``: the Hermes layout that Qwen2.5 and other chat models are trained on (their own chat
  template renders it): one block per call, ``<tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>``,
  blocks separated by ``"\n"``; an answer with no block is a plain reply (no call).

Each format's own reading lives in formats/ (card.py, native.py); the shared pieces are here.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

from .tags import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ..schema.tools import Tool, schema_validator

_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


def json_text(value: Any, ensure_ascii: bool = True) -> str:
    """`value` as JSON text (json.dumps's layout), an infinite number written ``1e999``: a number past
    a float's range, which the grammar admits, reads back as infinity, and json.dumps would write it
    ``Infinity``, which is not JSON (clients' parsers refuse it)."""
    if isinstance(value, float) and math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    if isinstance(value, list):
        return "[" + ", ".join(json_text(v, ensure_ascii) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(json.dumps(str(k), ensure_ascii=ensure_ascii) + ": " + json_text(v, ensure_ascii)
                               for k, v in value.items()) + "}"
    return json.dumps(value, ensure_ascii=ensure_ascii)


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: a tool name and its arguments. arguments_text: the arguments' JSON
    exactly as the model wrote it (the engine sets it on an answer's calls; what an API returns as
    ``function.arguments``, equal to its streamed deltas); None for a call read from elsewhere."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)
    arguments_text: Optional[str] = field(default=None, compare=False, repr=False)

    def written_arguments(self) -> str:
        """The arguments' JSON text: as the model wrote it, else serialized."""
        return self.arguments_text if self.arguments_text is not None else json_text(self.arguments, ensure_ascii=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


HERMES_TAGS = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)


def read_block(text: str, tags: tuple[str, str] = HERMES_TAGS) -> Optional[tuple[Any, int]]:
    """The JSON value of the first ``<tool_call>`` block and the index just past its ``</tool_call>``.

    Read by a JSON decoder from the opening tag (``json.JSONDecoder.raw_decode``), not cut at the
    first ``</tool_call>``: an argument whose text holds ``</tool_call>`` is an ordinary string.
    None when there is no opening tag, its content is not one JSON value, or no closing tag follows it.
    """
    opening, closing = tags
    start = text.find(opening)
    if start < 0:
        return None
    i = start + len(opening)
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    try:
        value, end = _DECODER.raw_decode(text, i)
    except (ValueError, RecursionError):
        return None
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if not text.startswith(closing, end):
        return None
    return value, end + len(closing)


def block_closed(text: str) -> bool:
    """Whether free text has closed its first tool-call block: a ``</tool_call>`` after the first
    ``<tool_call>`` and outside any JSON string (one in prose before the block, or inside a string
    argument, does not close it). Generation without the grammar stops there."""
    start = text.find(TOOL_CALL_OPEN)
    if start < 0:
        return False
    in_string = escaped = False
    for i in range(start + len(TOOL_CALL_OPEN), len(text)):
        ch = text[i]
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "<" and text.startswith(TOOL_CALL_CLOSE, i):
            return True
    return False


NOT_JSON = object()  # `message_call`'s arguments where their text is not JSON


def message_call(call: Any) -> tuple[Any, Any]:
    """(name, arguments) of a tool call in a chat message (OpenAI's ``{"function": {...}}`` or the
    function itself), arguments given as JSON text read; `NOT_JSON` where that text is not JSON."""
    fn = call.get("function", call) if isinstance(call, dict) else {}
    arguments = fn.get("arguments")
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            arguments = NOT_JSON
    return fn.get("name"), arguments


def call_value(value: Any, arguments_key: str = "arguments") -> Any:
    """A call object as the engine compares calls, ``{"name", "arguments"}``: the arguments read from
    `arguments_key`, any other member (Mistral's "id") left out; a value that is no object as it is."""
    if not isinstance(value, dict):
        return value
    return {"name": value.get("name"), "arguments": value.get(arguments_key)}


def list_calls(text: str, start: int, separators: tuple[str, ...]) -> list[tuple[Any, int]]:
    """The complete call objects of a list from `start` on: (JSON value, index just past it) of each,
    while one of `separators` follows it."""
    calls = []
    i = start
    while text[i:i + 1] == "{":
        try:
            value, end = _DECODER.raw_decode(text, i)
        except (ValueError, RecursionError):
            break
        calls.append((value, end))
        separator = next((s for s in separators if text.startswith(s, end)), None)
        if separator is None:
            break
        i = end + len(separator)
    return calls


def parse_response(text: str) -> Any:
    """The card's contract: the parsed list when a ``<tool_call>`` block is present, else the text.

    Unlike the card's helper it never raises: a block whose content is not JSON returns the text.
    """
    block = read_block(text)
    return text if block is None else block[0]


def parse_tool_calls(text: str) -> Optional[list[ToolCall]]:
    """Typed calls from model text, or None when the text holds no well-formed list of calls."""
    return typed_calls(parse_response(text))


def typed_calls(items: Any) -> Optional[list[ToolCall]]:
    if not isinstance(items, list):
        return None
    calls = []
    for item in items:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("arguments", {}), dict)
        ):
            return None
        calls.append(ToolCall(item["name"], item.get("arguments", {})))
    return calls


def native_blocks(text: str, tags: tuple[str, str] = HERMES_TAGS) -> tuple[list[tuple[Any, int]], bool]:
    """The tagged blocks in `text` (one call each, between `tags`): (JSON value, index just past its
    closing tag) of each complete block, and whether every opening tag found opened a well-formed
    block. Text between blocks is skipped (free generation may write prose around them)."""
    blocks: list[tuple[Any, int]] = []
    pos = 0
    while True:
        start = text.find(tags[0], pos)
        if start < 0:
            return blocks, True
        block = read_block(text[start:], tags)
        if block is None:
            return blocks, False
        blocks.append((block[0], start + block[1]))
        pos = start + block[1]


def validate_calls(calls: Sequence[ToolCall], tools: Sequence[Tool]) -> list[str]:
    """Problems with `calls` against the caller's own schemas (unknown name, arguments not valid):
    empty when valid. The judge is `Tool.parameters`, never the grammar's rewrite of it."""
    by_name = {t.name: t for t in tools}
    problems = []
    for i, call in enumerate(calls):
        tool = by_name.get(call.name)
        if tool is None:
            problems.append(f"call #{i}: unknown tool {call.name!r}")
            continue
        if not isinstance(call.arguments, dict):
            problems.append(f"call #{i} ({call.name}): arguments are not an object")
            continue
        validator = schema_validator(json.dumps(tool.parameters, sort_keys=True))
        for error in validator.iter_errors(call.arguments):
            problems.append(f"call #{i} ({call.name}): {error.message}")
    return problems
