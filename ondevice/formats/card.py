"""The model card's format: its system prompt and user template (the tools in the first user turn),
and one ``<tool_call>[{"name": ..., "arguments": ...}, ...]</tool_call>`` block holding the list."""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Sequence

from ..grammar.calls import CallOptions, Markers, call_rules, calls_rule, content_rule, message_rule
from ..engine.llama import LlamaModel
from .blocks import CLOSE, OPEN, TOOL_CALL_CLOSE, TOOL_CALL_OPEN, ToolCall, block_closed, parse_tool_calls
from .prompt import SYSTEM_PROMPT, render_user_prompt
from ..schema.tools import Tool
from .base import Message, ToolFormat

_DECODER = json.JSONDecoder()


class CardFormat(ToolFormat):
    name = "card"
    call_end = b"}"

    def messages(self, query: str, tools: Optional[list[Any]], history: Optional[list[Message]]) -> list[Message]:
        # A follow-up query is a plain user turn: the tools stay in the first user turn, as trained.
        if history:
            return list(history) + [{"role": "user", "content": query}]
        return [{"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": render_user_prompt(query, tools)}]

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers
        lines = []
        if options.allows_content and (not tools or options.max_calls == 0):
            return "start: content\n" + content_rule(options.content) + "\n"  # a JSON answer, no call possible
        if options.allows_text:
            lines += ["start: calls | message", message_rule(options.message_max_chars)]
        elif options.allows_content:
            lines += ["start: calls | content", content_rule(options.content)]
        else:
            lines.append("start: calls")
        if not tools or options.max_calls == 0:
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
        calls = []
        i = len(OPEN)
        if text[i:i + 1] == "\n":
            i += 1
        while text[i:i + 1] == "{":
            try:
                value, j = _DECODER.raw_decode(text, i)
            except (ValueError, RecursionError):
                break
            calls.append((value, j))
            if text[j:j + 1] != "," or text[j + 1:j + 2] not in (" ", "\n"):
                break
            i = j + 2
        return calls

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        # A token may straddle the end of a call (``}},\n``), so the cut is made on the text.
        if not text.startswith(OPEN):
            return OPEN + CLOSE
        calls = self.complete_calls(text)[:keep]
        return text[:calls[-1][1] if calls else len(OPEN)] + CLOSE

    def closed_tokens(self, model: LlamaModel, out: list[int], text: str, markers: Markers) -> list[int]:
        if markers.special:
            return list(markers.open_ids) + model.tokenize(text[len(TOOL_CALL_OPEN):-len(TOOL_CALL_CLOSE)],
                                                           special=False) + list(markers.close_ids)
        return model.tokenize(text, special=False)

    def free_stop(self) -> Optional[Callable[[str], bool]]:
        return block_closed  # free text stops after its block: the card's parse_response reads only that one

    def reply_content(self, text: str) -> str:
        return "" if text.startswith("<") else text.strip()  # a sentence (no_call "text"), else no content

    def answer_turn(self, result: Any) -> Message:
        if result.message is not None:
            content = result.message  # a sentence instead of a call goes back as the model wrote it
        elif result.calls is not None:
            content = json.dumps(result.calls_as_dicts())
        else:
            content = result.text
        return {"role": "assistant", "content": content}
