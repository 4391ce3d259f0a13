"""Llama 3.1/3.2/3.3's own layout: its chat template puts the tools (JSON Schemas) in the first user
turn and asks for ``{"name": function name, "parameters": dictionary of argument name and its
value}``; the answer is that bare JSON object, or a plain reply. Tool results come back in the
``ipython`` role (the template maps ``tool`` turns there).

The template renders one call an assistant turn (it raises on more), so an answer holds at most one
call: a parallel request gets its calls one turn at a time, each after the previous one's result.
The built-in tools (``<|python_tag|>``, brave_search, wolfram_alpha) are not written.
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..errors import ToolChoiceError
from ..grammar.calls import CallOptions, answer_rules, call_rules
from ..schema.tools import Tool
from ..settings import LLAMA3
from .base import TemplateFormat, takes_tools
from .blocks import ToolCall, call_value

_OPEN = "{"  # a call is the answer's one JSON object; a sentence cannot start with it
_KEY = "parameters"
_DECODER = json.JSONDecoder()


class Llama3Format(TemplateFormat):
    name = LLAMA3
    summary = 'Llama 3.x\'s own chat template, one bare {"name": ..., "parameters": ...} call a turn'
    tags = (_OPEN, "")  # no tag: the call object itself opens the answer
    stream_head = ""  # the call opens the answer
    call_end = b"}"
    arguments_key = _KEY

    # The fine-tune ondevice is built for carries Llama 3.2's template unchanged and answers in the
    # card's format: the template alone cannot tell a plain Llama from it.
    claims_template = False

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and '"parameters": ' in template and "ipython" in template:
            return "its chat template asks for {\"name\": ..., \"parameters\": ...} with ipython results (Llama 3.x)"
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        if options.min_calls > 1:
            raise ToolChoiceError(f"the llama3 format writes one call a turn (its chat template renders no more), "
                                  f"but {options.min_calls} calls are required: ask for one call a turn")
        calls = "call" if tools and options.max_calls != 0 else ""
        lines = answer_rules(options, calls, optional=True)
        if calls:
            lines += call_rules(tools, _KEY)
        return "\n".join(lines) + "\n"

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        if not text.startswith(_OPEN):
            return []
        try:
            value, end = _DECODER.raw_decode(text)
        except (ValueError, RecursionError):
            return []
        return [(call_value(value, _KEY), end)]

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        body = text.strip()
        if not body.startswith(_OPEN):
            return []  # a plain reply
        found = self.complete_calls(body)
        if not found or found[0][1] != len(body):
            return None
        value = found[0][0]
        if not isinstance(value, dict) or not isinstance(value["name"], str) or not isinstance(value["arguments"], dict):
            return None
        return [ToolCall(value["name"], value["arguments"])]

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        calls = self.complete_calls(text)[:keep]
        return text[:calls[-1][1]] if calls else ""
