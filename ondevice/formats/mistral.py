"""Mistral's layout (Mistral 7B v0.3, Nemo, Small; the template llama.cpp ships for Mistral-Nemo): the
tools as ``[AVAILABLE_TOOLS][...][/AVAILABLE_TOOLS]`` before the last user turn, the answer one list
after the ``[TOOL_CALLS]`` control token, ``[TOOL_CALLS][{"name": ..., "arguments": {...}, "id":
"a1b2c3d4e"}, ...]``, each call with an id of 9 letters and digits; results in ``[TOOL_RESULTS]`` turns
that name the call's id. An answer without the token is a plain reply.

The template refuses any id that is not 9 characters long, while the OpenAI and Anthropic APIs hand
out longer ones (``call_...``, ``toolu_...``): the history the template gets carries each id mapped
to 9 hexadecimal digits (the same id, the same 9), and a result without an id is matched to the
call it follows. Ministral 3's ``[TOOL_CALLS]name[ARGS]{...}`` layout is another format (not yet).
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Optional, Sequence

from ..grammar.calls import CallOptions, answer_rules, call_rules, calls_rule
from ..schema.tools import Tool
from ..settings import MISTRAL
from .base import Message, TemplateFormat, takes_tools
from .blocks import ToolCall, call_value, list_calls, typed_calls

_TAG = "[TOOL_CALLS]"
_OPEN, _CLOSE, _SEP = "[", "]", ", "
_ID = {"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"}
_NINE = re.compile(r"[a-zA-Z0-9]{9}")


class MistralFormat(TemplateFormat):
    name = MISTRAL
    summary = 'the model\'s own chat template, one [TOOL_CALLS][{"name": ..., "arguments": ..., "id": ...}] list (Mistral)'
    tags = (_TAG, "")
    stream_head = _TAG + _OPEN

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and _TAG + _OPEN in template:
            return "its chat template takes tools and writes calls as a [TOOL_CALLS][...] list with ids (Mistral)"
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        calls = "calls" if tools and options.max_calls != 0 else ""
        lines = answer_rules(options, calls, optional=True)
        if calls:
            items = calls_rule(options.min_calls, options.max_calls)
            lines += [f"calls: {m.open_lark} {json.dumps(_OPEN)} {items} {json.dumps(_CLOSE)}", f"SEP: {json.dumps(_SEP)}"]
            lines += call_rules(tools, after={"id": _ID})
        return "\n".join(lines) + "\n"

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        if not text.startswith(self.stream_head):
            return []
        # without the id: a repeated call differs from the first only in its id
        return [(call_value(value), end) for value, end in list_calls(text, len(self.stream_head), (_SEP,))]

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        calls = self.complete_calls(text)[:keep]
        return text[:calls[-1][1]] + _CLOSE if calls else ""

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        body = text.strip()
        if not body.startswith(_TAG):
            return []  # a plain reply
        try:
            return typed_calls(json.loads(body[len(_TAG):]))
        except (ValueError, RecursionError):
            return None

    def template_messages(self, messages: list[Message]) -> list[Message]:
        out: list[Message] = []
        waiting: list[str] = []  # the ids of the last calls whose results have not come yet
        for message in messages:
            calls = message.get("tool_calls")
            if isinstance(calls, list) and calls:
                mapped = [dict(c, id=_nine_characters(c.get("id") if isinstance(c, dict) else None, f"{len(out)}.{i}"))
                          if isinstance(c, dict) else c for i, c in enumerate(calls)]
                waiting = [c["id"] for c in mapped if isinstance(c, dict)]
                out.append(dict(message, tool_calls=mapped))
            elif message.get("role") == "tool":
                given = message.get("tool_call_id")
                call_id = _nine_characters(given, "") if given else (waiting[0] if waiting else _nine_characters(None, str(len(out))))
                if call_id in waiting:
                    waiting.remove(call_id)
                out.append(dict(message, tool_call_id=call_id))
            else:
                out.append(message)
        return out


def _nine_characters(call_id: Any, fallback: str) -> str:
    """A call id as Mistral's template takes it: itself when it is 9 letters and digits, else 9 hex
    digits of its hash (of `fallback`, the call's place in the conversation, when it has none)."""
    if isinstance(call_id, str) and _NINE.fullmatch(call_id):
        return call_id
    return hashlib.sha256(str(call_id if call_id else fallback).encode()).hexdigest()[:9]
