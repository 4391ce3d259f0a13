"""The parse layer: the model card's `parse_response`, made total, plus typed tool calls."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
_TOOL_CALL_RE = re.compile(re.escape(TOOL_CALL_OPEN) + r"(.*?)" + re.escape(TOOL_CALL_CLOSE), re.DOTALL)


@dataclass(frozen=True)
class ToolCall:
    """One call the model made: a tool name and its arguments."""

    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


def parse_response(text: str) -> Any:
    """The card's contract: the parsed list when a ``<tool_call>`` block is present, else the text.

    Unlike the card's helper it never raises: a block whose content is not JSON returns the text.
    """
    match = _TOOL_CALL_RE.search(text)
    if match is None:
        return text
    try:
        return json.loads(match.group(1))
    except ValueError:
        return text


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
