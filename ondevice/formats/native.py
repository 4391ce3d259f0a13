"""One tagged block per call, in the model's own chat template: the Hermes layout Qwen2.5 and other
chat models are trained on, each call a block ``<tool_call>\\n{"name": ..., "arguments": {...}}\\n</tool_call>``,
blocks separated by ``"\\n"``; an answer with no block is a plain reply. Families with other tags or
spacing subclass it (phi4_mini.py)."""

from __future__ import annotations

import json
from typing import Any, Optional, Sequence

from ..grammar.calls import CallOptions, answer_rules, call_rules, calls_rule
from .tags import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ..schema.tools import Tool
from ..settings import NATIVE
from .base import TemplateFormat, takes_tools
from .blocks import ToolCall, native_blocks, read_block, typed_calls


class NativeFormat(TemplateFormat):
    """One tagged block per call. The Hermes layout; a family with other tags or spacing is a subclass
    that sets `tags`, `inner` and `separator` (phi4_mini.py)."""

    name = NATIVE
    summary = "the model's own chat template with the tools, one " + TOOL_CALL_OPEN + " block per call (Hermes, as Qwen2.5)"
    tags = (TOOL_CALL_OPEN, TOOL_CALL_CLOSE)
    stream_head = TOOL_CALL_OPEN
    call_end = b">"  # a block ends with its closing tag
    block_per_call = True
    inner = "\n"  # between a tag and the call's JSON
    separator = "\n"  # between blocks

    family = "Hermes"  # for the detection reason

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and self.tags[0] in template and self.tags[1] in template:
            return f"its chat template takes tools and writes calls as {self.tags[0]}…{self.tags[1]} ({self.family})"
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        terminals = {value: _terminal(value) for value in (self.inner, self.separator) if value}
        calls = "" if not tools or options.max_calls == 0 else calls_rule(options.min_calls, options.max_calls,
                                                                           "block", terminals.get(self.separator, ""))
        lines = answer_rules(options, calls, optional=True)
        if calls:
            inner = f" {terminals[self.inner]} " if self.inner else " "
            lines.append(f"block: tag_open{inner}call{inner}tag_close")
            lines += [f"{name}: {json.dumps(value)}" for value, name in terminals.items()]
            lines += m.tag_rules()
            lines += call_rules(tools)
        return "\n".join(lines) + "\n"

    def reply_content(self, text: str) -> str:
        return text.strip()  # an answer without calls, free text included, as the model wrote it

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        blocks, well_formed = native_blocks(text, self.tags)
        if not well_formed:
            return None
        return typed_calls([value for value, _ in blocks])

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        calls = []
        i = 0
        while text.startswith(self.tags[0] + self.inner, i):
            block = read_block(text[i:], self.tags)
            if block is None:
                break
            calls.append((block[0], i + block[1]))
            i += block[1]
            if not text.startswith(self.separator, i):
                break
            i += len(self.separator)
        return calls

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        blocks = self.complete_calls(text)[:keep]
        return text[:blocks[-1][1]] if blocks else ""


def _terminal(value: str) -> str:
    """The Lark terminal naming a fixed piece of layout text ("NL" for the newline)."""
    return "NL" if value == "\n" else "T_" + "_".join(f"{ord(c):x}" for c in value)
