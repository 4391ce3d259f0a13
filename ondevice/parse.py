"""The tool-call format, in one place: its markers, parsing (the model card's `parse_response`, made
total, plus typed tool calls), closing a truncated list, and checking calls against their tools.

The grammar (grammar.py), the decode loop (decode.py), the facade (api.py) and the benchmarks all
use these.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional, Sequence

import jsonschema

from .tools import Tool

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
OPEN = TOOL_CALL_OPEN + "["  # a constrained answer is exactly OPEN + calls + CLOSE
CLOSE = "]" + TOOL_CALL_CLOSE
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


def close_text(text: str) -> str:
    """The valid tool-call text made of every complete call in a truncated `text`.

    A token may straddle the end of a call (``}},\n``), so the cut is made on the text: complete call
    objects are kept, the rest dropped, and ``]</tool_call>`` appended.
    """
    if not text.startswith(OPEN):
        return OPEN + CLOSE
    decoder = json.JSONDecoder()
    end = i = len(OPEN)
    if text[i:i + 1] == "\n":
        i += 1
    while text[i:i + 1] == "{":
        try:
            _, j = decoder.raw_decode(text, i)
        except ValueError:
            break
        end = j
        if text[j:j + 1] != "," or text[j + 1:j + 2] not in (" ", "\n"):
            break
        i = j + 2
    return text[:end] + CLOSE


@lru_cache(maxsize=4096)
def _validator(schema_json: str) -> Any:
    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def validate_calls(calls: Sequence[ToolCall], tools: Sequence[Tool]) -> list[str]:
    """Problems with `calls` against `tools` (unknown name, arguments not valid): empty when valid."""
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
        validator = _validator(json.dumps(tool.parameters, sort_keys=True))
        for error in validator.iter_errors(call.arguments):
            problems.append(f"call #{i} ({call.name}): {error.message}")
    return problems
