"""A request's prompt tokens: the model's chat template rendered, control tokens only from its markup,
and how much of the prompt is the tools prefix (the part the prefix cache keeps)."""

from __future__ import annotations

from typing import Any, Optional

from ..errors import ChatTemplateError
from ..formats.prompt import Message
from ..schema.limits import check_context_bytes
from ..template.chat_template import ChatTemplate, Span
from ..template.control_tokens import ControlTokens, refuse_unmapped_control_text, tokenize_prompt
from .llama import LlamaModel


class PromptBuilder:
    """Renders and tokenizes prompts for one model and chat template."""

    def __init__(self, model: LlamaModel, template: ChatTemplate, date_string: Optional[str]):
        self.model = model
        self.template = template
        self.date_string = date_string
        self._control: Optional[ControlTokens] = None

    def render(self, messages: list[Message], date_string: Optional[str] = None,
               tools: Optional[list[Any]] = None) -> str:
        """The prompt text for `messages`, as the model's chat template renders it (`date_string`
        pins "Today Date"; `tools` is the template's own ``tools`` variable)."""
        date = self.date_string if date_string is None else date_string
        return self.template.render(messages, add_generation_prompt=True, date_string=date, tools=tools)

    def tokenize(self, messages: list[Message], date_string: Optional[str] = None,
                 tools: Optional[list[Any]] = None) -> tuple[str, list[int]]:
        """The rendered prompt and its tokens, control tokens coming only from the template's markup."""
        text, _, tokens = self._render_tokens(messages, date_string, tools)
        return text, tokens

    def prepare(self, messages: list[Message], tools_variable: Optional[list[Any]], date_string: Optional[str],
                query: Optional[str], max_token_bytes: int) -> tuple[list[int], int]:
        """(prompt tokens, length of its tools prefix): the prefix ends where `query` (its last
        occurrence in the last message; default: that message's whole text) begins. The template is
        rendered once and the prompt tokenized once; the prefix is read off the prompt's own tokens."""
        check_context_bytes(sum(len(text.encode("utf-8")) for text in strings_of([messages, tools_variable])),
                            self.model.n_ctx, max_token_bytes)
        text, spans, prompt = self._render_tokens(messages, date_string, tools_variable)
        prefix_bytes = len(text[:query_start(text, spans, messages, query)].encode("utf-8"))
        return prompt, self._tokens_within(prompt, prefix_bytes)

    def _render_tokens(self, messages: list[Message], date_string: Optional[str],
                       tools: Optional[list[Any]]) -> tuple[str, Optional[list[Span]], list[int]]:
        """The rendered prompt, where the caller's content lies in it (None: unknown), and its tokens."""
        date = self.date_string if date_string is None else date_string
        text, spans = self.template.render_with_spans(messages, add_generation_prompt=True, date_string=date,
                                                      tools=tools)
        if self._control is None:
            self._control = ControlTokens(self.model.control_tokens)
        # Keys (property names, argument names) are rendered by the template as they are, unmarked:
        # one holding control-token text cannot be kept as plain text, so it is refused.
        for key in keys_of([messages, tools]):
            if self._control.spans(key):
                raise ChatTemplateError(f"the key {key[:80]!r} (in the tools or messages) holds control-token text "
                                        f"{key[slice(*self._control.spans(key)[0])]!r}: rename it")
        if spans is None:
            refuse_unmapped_control_text(strings_of([messages, tools]), self._control)
            return text, None, self.model.tokenize(text)
        return text, spans, tokenize_prompt(text, spans, self._control, self.model.tokenize)

    def _tokens_within(self, tokens: list[int], n_bytes: int) -> int:
        """How many of the first `tokens` lie wholly within the first `n_bytes` bytes of their text (a
        token that straddles the end is outside: the next request may tokenize that text differently)."""
        size = 0
        for i, token in enumerate(tokens):
            size += len(self.model.detokenize([token]))
            if size > n_bytes:
                return i
        return len(tokens)


def query_start(text: str, spans: Optional[list[Span]], messages: list[Message], query: Optional[str]) -> int:
    """Where `query` begins in the rendered `text`: its last occurrence in the last message's content
    (default: that whole content), found through the content's span; len(text) when it is not there."""
    last = messages[-1].get("content") if messages else None
    if not spans or not isinstance(last, str) or not last.strip():
        return len(text)
    query = last if query is None else query
    at = last.rfind(query) if query else -1
    if at < 0:
        return len(text)
    core, lead = last.strip(), len(last) - len(last.lstrip())  # a span holds the content less its blanks
    for start, end in reversed(spans):
        if text[start:end] == core:
            return start + max(0, at - lead)
    return len(text)


def keys_of(value: Any) -> list[str]:
    """Every dict key in a message or tools structure."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [key for item in value.values() for key in keys_of(item)]
    if isinstance(value, (list, tuple)):
        return [key for item in value for key in keys_of(item)]
    return []


def strings_of(value: Any) -> list[str]:
    """Every string in a message structure (content, tool calls, tool results), roles included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings_of(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in strings_of(item)]
    return []
