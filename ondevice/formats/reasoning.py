"""The thinking block of reasoning models: its markers and layout, recognized from the chat template.

Qwen3, the DeepSeek-R1 distills and SmolLM3 write a thought before the answer,
``<think>\\n...\\n</think>\\n\\n`` then the answer; Ministral 3 ``[THINK]...[/THINK]``. The engine decodes the thought free (only its end
is guaranteed, under a token budget) and the answer under the call grammar after it (engine/session.py);
this module holds what the engine needs to know of the syntax, so nothing outside the formats names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Optional

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
_SWITCH = re.compile(r"\benable_thinking\b")
_JINJA_CODE = re.compile(r"\{[{%].*?[}%]\}", re.DOTALL)
_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def _is_markup(literal: str, block: "ThinkingBlock") -> bool:
    """Whether a Jinja string literal is `block`'s markup: its end marker, with at most the
    opening marker and blank lines around it (``'\\n</think>\\n\\n'``), not prose that mentions it."""
    body = literal[1:-1]
    if block.close not in body:
        return False
    return not body.replace(block.close, "").replace(block.open, "").replace("\\n", "").strip()


@dataclass(frozen=True)
class ThinkingBlock:
    """A thought's layout: ``open + inner + thought + inner + close + after`` (Qwen3's template writes
    ``<think>\\n`` ... ``\\n</think>\\n\\n``). `switch`: the template variable that turns thinking off
    (``enable_thinking``; None where the template has none)."""

    open: str = THINK_OPEN
    close: str = THINK_CLOSE
    inner: str = "\n"
    after: str = "\n\n"
    switch: Optional[str] = None

    def opened_by(self, prompt: str) -> bool:
        """Whether a rendered prompt already opens the thought (DeepSeek-R1's generation prompt ends
        with ``<think>\\n``): the model then writes the thought's text, not its opening."""
        return prompt.rstrip().endswith(self.open)

    def closing(self, thought: str) -> str:
        """The text that closes a thought cut at the budget (the model never wrote the end marker)."""
        return ("" if thought.endswith(self.inner) else self.inner) + self.close + self.after

    def ended(self, text: str) -> Optional[int]:
        """Where the end marker ends in a thought's text (None while it has not been written)."""
        at = text.find(self.close)
        return None if at < 0 else at + len(self.close)

    def visible(self, text: str, final: bool = False) -> str:
        """The thought as the API returns it: the text between the markers, without the layout's blank
        lines; while it grows (`final` False) a trailing blank or a partial end marker is held back,
        so the pieces sent so far are always a prefix of the final thought."""
        if not final and self.open.startswith(text):  # the opening marker is still being written
            return ""
        body = text[len(self.open):] if text.startswith(self.open) else text
        end = body.find(self.close)
        if end >= 0:
            return body[:end].strip()
        if final:
            return body.strip()
        for k in range(min(len(self.close) - 1, len(body)), 0, -1):  # a partial end marker waits
            if self.close.startswith(body[-k:]):
                body = body[:-k]
                break
        return body.strip()  # a prefix's strip is a prefix of the whole's


BLOCKS = (ThinkingBlock(), ThinkingBlock("[THINK]", "[/THINK]", inner="", after=""))  # Qwen3's, Ministral 3's


def describe(block: Optional[ThinkingBlock]) -> Optional[str]:
    """One line on a template's thinking block for `ondevice models` (None: the template has none)."""
    if block is None:
        return None
    off = f"the template's {block.switch}" if block.switch else "no thought, or an empty one where the prompt opens it"
    return f"a {block.open} thought before the calls, decoded free (--reasoning off: {off})"


def thinking_block(template: str) -> Optional[ThinkingBlock]:
    """The thinking block a chat template knows: its code (not its prose) names the end marker (Qwen3's
    writes the thought back, DeepSeek-R1's strips it from earlier turns; Granite 3.3's only mentions
    the tags in a system text, behind its own switch); None where it has none."""
    literals = [literal for code in _JINJA_CODE.findall(template) for literal in _LITERAL.findall(code)]
    for block in BLOCKS:
        if any(_is_markup(literal, block) for literal in literals):
            return replace(block, switch="enable_thinking" if _SWITCH.search(template) else None)
    return None
