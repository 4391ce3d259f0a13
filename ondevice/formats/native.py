"""The Hermes layout Qwen2.5 and other chat models are trained on: the model's own chat template
renders the tools, and each call is a block ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``,
blocks separated by ``"\\n"``; an answer with no block is a plain reply."""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..grammar.calls import CallOptions, Markers, call_rules, calls_rule, content_rule, message_rule
from .tags import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ..schema.tools import Tool
from ..settings import NATIVE
from .base import Message, Tokenizer, ToolFormat
from .blocks import ToolCall, native_blocks, read_block, typed_calls
from .result import CallResult


class NativeFormat(ToolFormat):
    name = NATIVE
    summary = "the model's own chat template with the tools, one " + TOOL_CALL_OPEN + " block per call (Hermes, as Qwen2.5)"
    tags = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
    stream_head = TOOL_CALL_OPEN
    call_end = b">"  # a block ends with its closing tag
    block_per_call = True
    template_layout = True

    def messages(self, query: str, tools: Optional[list[Any]], history: Optional[list[Message]]) -> list[Message]:
        # No card text: a system message only if the caller gave one; the tools go to the template.
        return list(history or []) + [{"role": "user", "content": query}]

    def template_tools(self, tools: Optional[list[Any]]) -> Optional[list[dict[str, Any]]]:
        # The OpenAI layout the templates expect, each tool's own content as the caller passed it.
        if not tools:
            return None
        return [tool if isinstance(tool, dict) and tool.get("type") == "function"
                and isinstance(tool.get("function"), dict) else {"type": "function", "function": tool}
                for tool in tools]

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        calls = "" if not tools or options.max_calls == 0 else calls_rule(options.min_calls, options.max_calls,
                                                                           "block", "NL")
        alternatives = ([calls] if calls else []) + (["message"] if options.allows_text else []) \
            + (["content"] if options.allows_content else [])
        start = " | ".join(alternatives) if alternatives else "EMPTY"
        if options.min_calls == 0 and alternatives and not options.allows_content:
            start = f"({start})?"  # the empty answer: no call (also where a budget cuts before the first block)
        lines = [f"start: {start}"] + (['EMPTY: ""'] if start == "EMPTY" else [])
        if options.allows_text:
            lines.append(message_rule(options.message_max_chars))
        if options.allows_content:
            lines.append(content_rule(options.content))
        if calls:
            lines += ["block: tag_open NL call NL tag_close", 'NL: "\\n"']
            # A model with the tags as special tokens may still spell them in text pieces (Qwen2.5-Coder-0.5B
            # puts far more probability on "<" than on its <tool_call> token): either spelling is the tag.
            for rule, lark, text in (("tag_open", m.open_lark, m.open_text), ("tag_close", m.close_lark, m.close_text)):
                lines.append(f"{rule}: {lark}" + (f" | {json.dumps(text)}" if m.special else ""))
            lines += call_rules(tools)
        return "\n".join(lines) + "\n"

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        blocks, well_formed = native_blocks(text)
        if not well_formed:
            return None
        return typed_calls([value for value, _ in blocks])

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        calls = []
        i = 0
        while text.startswith(TOOL_CALL_OPEN + "\n", i):
            block = read_block(text[i:])
            if block is None:
                break
            calls.append((block[0], i + block[1]))
            i += block[1]
            if text[i:i + 1] != "\n":
                break
            i += 1
        return calls

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        blocks = self.complete_calls(text)[:keep]
        return text[:blocks[-1][1]] if blocks else ""

    def closed_tokens(self, model: Tokenizer, out: list[int], text: str, markers: Markers) -> list[int]:
        # The output's own tokens as far as they lie within `text` (a tag may be a special token or
        # text), the rest (a token straddling the cut) re-tokenized as plain text.
        target = len(text.encode("utf-8"))
        kept: list[int] = []
        size = 0
        for token in out:
            piece = len(model.detokenize([token]))
            if size + piece > target:
                break
            kept.append(token)
            size += piece
        rest = text.encode("utf-8")[size:].decode("utf-8", errors="replace")
        return kept + (model.tokenize(rest, special=False) if rest else [])

    def answer_turn(self, result: CallResult) -> Message:
        turn: dict[str, Any] = {"role": "assistant", "content": result.message or ""}
        if result.calls:
            turn["tool_calls"] = [{"type": "function", "function": c.to_dict()} for c in result.calls]
        elif result.calls is None:
            turn["content"] = result.text
        return turn

    def reply_content(self, text: str) -> str:
        return text.strip()
