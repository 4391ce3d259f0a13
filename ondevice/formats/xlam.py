"""xLAM-2's layout: its chat template writes the tools as JSON in the system turn and asks for the calls
"in a single JSON array", ``[{"name": ..., "arguments": {...}}, ...]``, as the whole answer; a turn
without a call is a plain reply ("If no tool is suitable, state that explicitly"). Tool results come
back as ``tool`` turns. The empty array is the answer without a call where a sentence may not stand
(the template itself writes ``[]`` for an assistant turn with no calls and no text).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..grammar.calls import CallOptions, answer_rules, call_rules, calls_rule
from ..schema.tools import Tool
from ..settings import XLAM
from .base import TemplateFormat, takes_tools
from .blocks import ToolCall, list_calls, typed_calls

_OPEN, _CLOSE, _SEP = "[", "]", ", "  # the template joins the calls with ", " (its tojson's own separators inside)
_INSTRUCTION = "make calls in a single JSON array"  # xLAM-2's system text


class JsonArrayFormat(TemplateFormat):
    name = XLAM
    summary = 'the model\'s own chat template, the calls as one bare JSON array [{"name": ..., "arguments": ...}, ...] (xLAM-2)'
    tags = (_OPEN, "")  # no tag: the array itself opens the answer
    stream_head = _OPEN
    call_end = b"}"

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and _INSTRUCTION in template:
            return f"its chat template takes tools and asks for calls \"{_INSTRUCTION}\" (xLAM-2)"
        return None

    def empty_answer(self) -> str:
        return _OPEN + _CLOSE

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        no_calls = not tools or options.max_calls == 0
        lines = answer_rules(options, "" if no_calls and options.allows_content else "calls")
        if no_calls and options.allows_content:
            return "\n".join(lines) + "\n"  # a JSON answer, no call possible
        if no_calls:
            return "\n".join(lines + [f"calls: {json.dumps(_OPEN + _CLOSE)}"]) + "\n"
        calls = calls_rule(options.min_calls, options.max_calls)
        body = calls if options.min_calls else f"({calls})?"
        lines += [f"calls: {json.dumps(_OPEN)} {body} {json.dumps(_CLOSE)}", f"SEP: {json.dumps(_SEP)}"]
        return "\n".join(lines + call_rules(tools)) + "\n"

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        if not text.startswith(_OPEN):
            return []
        return list_calls(text, len(_OPEN), (_SEP,))

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        calls = self.complete_calls(text)[:keep]
        return (text[:calls[-1][1]] if calls else _OPEN) + _CLOSE

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        body = text.strip()
        if not body.startswith(_OPEN):
            return []  # a plain reply
        try:
            return typed_calls(json.loads(body))
        except (ValueError, RecursionError):
            return None
