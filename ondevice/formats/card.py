"""The model card's format: its system prompt and user template (the tools in the first user turn),
and one ``<tool_call>[{"name": ..., "arguments": ...}, ...]</tool_call>`` block holding the list
(one optional newline after ``[`` and before ``]``, a space or a newline after each ``,`` between calls).

The card's strings are the fine-tune's trained interface and are reproduced verbatim from the model
card (including the trailing spaces at the end of its first three lines).
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Sequence

from ..grammar.calls import CallOptions, Markers, answer_rules, call_rules, calls_rule
from .tags import CLOSE, OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ..schema.tools import Tool
from ..settings import CARD
from .base import Message, Tokenizer, ToolFormat
from .blocks import ToolCall, block_closed, list_calls, parse_tool_calls
from .result import CallResult

SYSTEM_PROMPT = """
You are an expert in composing functions. You are given a question and a set of possible functions. 
Based on the question, you will need to make one or more function/tool calls to achieve the purpose. 
If none of the functions can be used, point it out and refuse to answer. 
If the given question lacks the parameters required by the function, also point it out.

The output MUST strictly adhere to the following format, and NO other text MUST be included.
The example format is as follows. Please make sure the parameter type is correct. If no function call is needed, please make the tool calls an empty list '[]'.
```
<tool_call>[
{"name": "func_name1", "arguments": {"argument1": "value1", "argument2": "value2"}},
... (more tool calls as required)
]</tool_call>
```
""".strip()

# The card writes this template with a trailing newline, but renders it with jinja2's Template, which
# drops one trailing newline by default; the chat template trims the content anyway. So the user turn
# ends with the query itself.
USER_TEMPLATE = "You have access to the following tools:\n<tools>{tools}</tools>\n\nPlease answer the following query:\n{query}"
_BEFORE_QUERY = "</tools>\n\nPlease answer the following query:\n"  # json.dumps writes no newline: found once


def render_user_prompt(query: str, tools: Optional[list[Any]] = None) -> str:
    """The first user turn: the tools exactly as passed (``json.dumps`` of the raw list), then the query."""
    return USER_TEMPLATE.format(tools=json.dumps(tools if tools is not None else []), query=query)


class CardFormat(ToolFormat):
    name = CARD
    summary = "the model card's prompt, one " + OPEN + "...]" + TOOL_CALL_CLOSE + " list"
    tags = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
    stream_head = OPEN
    list_frame = (OPEN, CLOSE)  # the GBNF export's frame (grammar/export.py)
    call_end = b"}"

    def messages(self, query: str, tools: Optional[list[Any]], history: Optional[list[Message]]) -> list[Message]:
        # A follow-up query is a plain user turn: the tools stay in the first user turn, as trained.
        if history:
            return list(history) + [{"role": "user", "content": query}]
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_user_prompt(query, tools)}]

    def query_offset(self, content: str) -> int:
        at = content.find(_BEFORE_QUERY) if content.startswith("You have access to the following tools:\n") else -1
        return at + len(_BEFORE_QUERY) if at >= 0 else 0

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        no_calls = not tools or options.max_calls == 0
        lines = answer_rules(options, "" if no_calls and options.allows_content else "calls")
        if no_calls and options.allows_content:
            return "\n".join(lines) + "\n"  # a JSON answer, no call possible
        if no_calls:
            lines.append(f'calls: {m.open_lark} "[]" {m.close_lark}')
            return "\n".join(lines) + "\n"
        calls = calls_rule(options.min_calls, options.max_calls)
        body = f"NL? {calls} NL?" if options.min_calls else f"(NL? {calls} NL?)?"
        lines += [f'calls: {m.open_lark} "[" {body} "]" {m.close_lark}', 'NL: "\\n"', "SEP: /,[ \\n]/"]
        return "\n".join(lines + call_rules(tools)) + "\n"

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        return parse_tool_calls(text)

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        if not text.startswith(OPEN):
            return []
        start = len(OPEN) + (text[len(OPEN):len(OPEN) + 1] == "\n")
        return list_calls(text, start, (", ", ",\n"))

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        # A token may straddle the end of a call (``}},\n``), so the cut is made on the text.
        if not text.startswith(OPEN):
            return OPEN + CLOSE
        calls = self.complete_calls(text)[:keep]
        return text[:calls[-1][1] if calls else len(OPEN)] + CLOSE

    def empty_answer(self) -> str:
        return OPEN + CLOSE

    def closed_tokens(self, model: Tokenizer, out: list[int], text: str, markers: Markers) -> list[int]:
        if markers.special:
            return list(markers.open_ids) + model.tokenize(text[len(TOOL_CALL_OPEN):-len(TOOL_CALL_CLOSE)],
                                                           special=False) + list(markers.close_ids)
        return model.tokenize(text, special=False)

    def free_stop(self) -> Optional[Callable[[str], bool]]:
        return block_closed  # free text stops after its block: the card's parse_response reads only that one

    def reply_content(self, text: str) -> str:
        return "" if text.startswith("<") else text.strip()  # a sentence (no_call "text"), else no content

    def answer_turn(self, result: CallResult) -> Message:
        if result.message is not None:
            content = result.message  # a sentence instead of a call goes back as the model wrote it
        elif result.calls is not None:
            content = json.dumps(result.calls_as_dicts())
        else:
            content = result.text
        return {"role": "assistant", "content": content}
