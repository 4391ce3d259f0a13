"""Ministral 3's layout (Mistral's template for its 2025 small models): the tools as
``[AVAILABLE_TOOLS][...][/AVAILABLE_TOOLS]``, each call written ``[TOOL_CALLS]NAME[ARGS]{arguments}``
with nothing between calls and no ids, results in ``[TOOL_RESULTS]...[/TOOL_RESULTS]`` turns. An answer
without the token is a plain reply. Its thought, ``[THINK]...[/THINK]`` before the answer, is a
thinking block (reasoning.py): decoded free, then the calls under this grammar.

The call is not a JSON object: the name stands bare between the two control tokens, the arguments
alone are JSON. So this format has its own grammar (each tool's name, then ``[ARGS]``, then its
arguments' schema), reader of complete calls, and stream reader (`Ministral3Reader`).
"""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..grammar.calls import JSON_LAYOUT, CallOptions, answer_rules, calls_rule
from ..schema.tools import Tool
from ..settings import MINISTRAL3
from .base import ConsecutiveCallsFormat, Message, takes_tools
from .stream import CallStart, Event, ToolCallReader

_TAG, _ARGS = "[TOOL_CALLS]", "[ARGS]"
_DECODER = json.JSONDecoder()


class Ministral3Reader(ToolCallReader):
    """The stream reader of ``[TOOL_CALLS]NAME[ARGS]{...}`` calls: a call starts once its name is
    complete (``[ARGS]`` written), then its arguments stream as they grow; the next tag follows at once."""

    def _step(self, events: list[Event]) -> None:
        text, pos = self.text, self._pos
        if self._state == "open":
            if len(text) >= len(_TAG) or not _TAG.startswith(text):
                self._state = "between" if text.startswith(_TAG) else "done"
            return
        if self._state == "between":
            if pos >= len(text) or _TAG.startswith(text[pos:]) and len(text) - pos < len(_TAG):
                return  # the next tag, if any, is not complete yet
            if not text.startswith(_TAG, pos):
                self._state = "done"
                return
            end = text.find(_ARGS, pos + len(_TAG))
            if end < 0:
                return  # the name is still being written
            self._index += 1
            events.append(CallStart(self._index, text[pos + len(_TAG):end]))
            start = end + len(_ARGS)
            self._state, self._pos, self._sent = "arguments", start, start
            self._depth, self._in_string, self._escape = 0, False, False
            return
        super()._step(events)
        if self._state == "close_call":  # the arguments end the call: no object around them
            self._state = "between"


class Ministral3Format(ConsecutiveCallsFormat):
    name = MINISTRAL3
    summary = "the model's own chat template, each call [TOOL_CALLS]name[ARGS]{...} (Ministral 3)"
    # [ARGS] stands where other formats have a closing tag: the second marker, between a call's name
    # and its arguments (the vocabulary maps both to their control tokens where the model has them).
    tags = (_TAG, _ARGS)
    stream_head = _TAG
    block_per_call = True
    reader_class = Ministral3Reader

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and _TAG in template and f"'{_ARGS}'" in template:
            return "its chat template takes tools and writes calls as [TOOL_CALLS]name[ARGS]{...} (Ministral 3)"
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        calls = "" if not tools or options.max_calls == 0 else calls_rule(options.min_calls, options.max_calls,
                                                                           "block", "")
        lines = answer_rules(options, calls, optional=True)
        if calls:
            lines.append("block: tag_open call")
            lines += m.tag_rules(close_rule="tag_args")
            lines.append("call: " + " | ".join(f"call_{i}" for i in range(len(tools))))
            for i, tool in enumerate(tools):
                schema = dict(tool.grammar_schema, **{"x-guidance": JSON_LAYOUT})
                lines += [f"call_{i}: {json.dumps(tool.name)} tag_args args_{i}", f"args_{i}: %json {json.dumps(schema)}"]
        return "\n".join(lines) + "\n"

    def template_messages(self, messages: list[Message]) -> list[Message]:
        # The template writes an assistant's thought only from a content block of type "thinking"
        # ([THINK]...[/THINK] before the text and the calls): reasoning_content goes there.
        out = []
        for message in messages:
            thought = message.get("reasoning_content") if message.get("role") == "assistant" else None
            if isinstance(thought, str) and thought:
                content = message.get("content")
                blocks: list[Any] = [{"type": "thinking", "thinking": thought}]
                if isinstance(content, list):
                    blocks += content
                elif content:
                    blocks.append({"type": "text", "text": str(content)})
                message = {k: v for k, v in message.items() if k != "reasoning_content"}
                message["content"] = blocks
            out.append(message)
        return out

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        calls: list[tuple[Any, int]] = []
        i = 0
        while text.startswith(_TAG, i):
            at = text.find(_ARGS, i + len(_TAG))
            if at < 0:
                break
            try:
                arguments, end = _DECODER.raw_decode(text, at + len(_ARGS))
            except (ValueError, RecursionError):
                break
            calls.append(({"name": text[i + len(_TAG):at], "arguments": arguments}, end))
            i = end
        return calls

