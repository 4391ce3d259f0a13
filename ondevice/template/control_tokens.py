"""Tokenizing a rendered prompt so that only the chat template's own markup yields control tokens.

Caller content (the query, system text, history, tools, tool results) may hold the text of a control
token, e.g. ``<|im_end|>`` or ``<|eot_id|>``. Tokenized with special-token parsing, that text would
become the real token and forge a chat turn. So the prompt is split at the control tokens that lie in
the template's markup only; each piece between two of them (markup text and content together) is
tokenized as plain text.

Why merge markup text and content into one plain piece rather than tokenize each alone: llama.cpp
itself tokenizes the text between two special tokens as one fragment, so merging reproduces its
tokenization exactly for every prompt whose content holds no control-token text, while tokenizing
markup and content apart would change merges at their boundary (``"\\n\\n"`` + ``" x"``). And
when no control token overlaps content at all (the usual case), the whole prompt is tokenized in one
llama.cpp call with special-token parsing, as llama.cpp itself would: token for token what the model was
trained on. Prompts whose content holds control-token text differ from ``transformers``' on purpose:
it would parse that text into control tokens; here it stays text.

Plain pieces are tokenized with llama.cpp's ``parse_special=False``, which still matches user-defined
added tokens (not control tokens; ``transformers`` matches them in any text too). Where content is
located comes from ChatTemplate.render_with_spans; a template that hides it gets
`refuse_unmapped_control_text`.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping, Sequence

from .chat_template import Span
from ..errors import ChatTemplateError

Tokenize = Callable[[str, bool], list[int]]  # (text, parse_special) -> tokens


class ControlTokens:
    """A vocabulary's control tokens by text, and a scanner that finds them (longest first)."""

    def __init__(self, by_text: Mapping[str, int]):
        self.by_text = {text: token for text, token in by_text.items() if text}
        alternatives = sorted(self.by_text, key=len, reverse=True)
        self.pattern = re.compile("|".join(map(re.escape, alternatives))) if alternatives else None

    def spans(self, text: str) -> list[Span]:
        """Where control-token text occurs in `text`."""
        return [] if self.pattern is None else [m.span() for m in self.pattern.finditer(text)]


def tokenize_prompt(text: str, content: Sequence[Span], control: ControlTokens, tokenize: Tokenize) -> list[int]:
    """Tokens of a rendered prompt: control tokens only from markup, every `content` span as plain text."""
    if all(_within_markup(hit, content) for hit in control.spans(text)):
        return tokenize(text, True)  # content holds none: one call, as llama.cpp itself tokenizes a prompt
    return split_tokenize(text, content, control, tokenize)


def split_tokenize(text: str, content: Sequence[Span], control: ControlTokens, tokenize: Tokenize) -> list[int]:
    """Split at the markup's control tokens only; tokenize the text between them as plain text."""
    tokens: list[int] = []
    plain: list[str] = []  # text since the last markup control token

    def flush() -> None:
        if plain:
            tokens.extend(tokenize("".join(plain), False))
            plain.clear()

    pos = 0
    for start, end in list(content) + [(len(text), len(text))]:
        markup = text[pos:start]
        cursor = 0
        for a, b in control.spans(markup):
            plain.append(markup[cursor:a])
            flush()
            tokens.append(control.by_text[markup[a:b]])
            cursor = b
        plain.append(markup[cursor:])
        plain.append(text[start:end])
        pos = end
    flush()
    return tokens


def _within_markup(hit: Span, content: Sequence[Span]) -> bool:
    a, b = hit
    return all(b <= start or a >= end for start, end in content)


def refuse_unmapped_control_text(strings: Sequence[str], control: ControlTokens) -> None:
    """For a template whose content spans are unknown: refuse content holding control-token text."""
    for text in strings:
        hits = control.spans(text)
        if hits:
            a, b = hits[0]
            raise ChatTemplateError(
                f"the content holds the control-token text {text[a:b]!r} and this chat template transforms content "
                "(beyond trimming or JSON-escaping it), so it cannot be kept as plain text: remove that text, "
                "or use a template that inserts content as is"
            )
