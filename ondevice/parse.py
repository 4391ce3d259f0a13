"""The parse layer: the model card's `parse_response`, made total, plus typed tool calls.

The list is read by a JSON decoder from the opening ``<tool_call>`` (``json.JSONDecoder.raw_decode``),
not cut at the first ``</tool_call>``: an argument whose text holds ``</tool_call>`` is an ordinary
string. For ordinary texts the result is the card's: the parsed list, or the text itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Optional

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_DECODER = json.JSONDecoder()
_WHITESPACE = " \t\n\r"


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: a tool name and its arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


def read_block(text: str) -> Optional[tuple[Any, int]]:
    """The JSON value of the first ``<tool_call>`` block and the index just past its ``</tool_call>``.

    None when there is no opening tag, its content is not one JSON value, or no closing tag follows it.
    """
    start = text.find(TOOL_CALL_OPEN)
    if start < 0:
        return None
    i = start + len(TOOL_CALL_OPEN)
    while i < len(text) and text[i] in _WHITESPACE:
        i += 1
    try:
        value, end = _DECODER.raw_decode(text, i)
    except ValueError:
        return None
    while end < len(text) and text[end] in _WHITESPACE:
        end += 1
    if not text.startswith(TOOL_CALL_CLOSE, end):
        return None
    return value, end + len(TOOL_CALL_CLOSE)


def block_closed(text: str) -> bool:
    """Whether free text has closed its first tool-call block: a ``</tool_call>`` outside any JSON string.

    Generation without the grammar stops there (the parse layer reads only the first block); a
    ``</tool_call>`` inside a string argument does not end it.
    """
    start = text.find(TOOL_CALL_OPEN)
    if start < 0:
        return False
    in_string = escaped = False
    i = start + len(TOOL_CALL_OPEN)
    while i < len(text):
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
        i += 1
    return False


def parse_response(text: str) -> Any:
    """The card's contract: the parsed list when a ``<tool_call>`` block is present, else the text.

    Unlike the card's helper it never raises: a block whose content is not JSON returns the text.
    """
    block = read_block(text)
    return text if block is None else block[0]


def parse_tool_calls(text: str) -> Optional[list[ToolCall]]:
    """Typed calls from model text, or None when the text holds no well-formed list of calls."""
    parsed = parse_response(text)
    if not isinstance(parsed, list):
        return None
    calls = []
    for item in parsed:
        if (
            not isinstance(item, dict)
            or not isinstance(item.get("name"), str)
            or not isinstance(item.get("arguments", {}), dict)
        ):
            return None
        calls.append(ToolCall(item["name"], item.get("arguments", {})))
    return calls
