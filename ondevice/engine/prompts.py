"""A request's prompt tokens: the model's chat template rendered, control tokens only from its markup,
and how much of the prompt is the tools prefix (the part the prefix cache keeps)."""

from __future__ import annotations

from typing import Any, Optional

from ..template.chat_template import ChatTemplate
from ..template.control_tokens import ControlTokens, refuse_unmapped_control_text, tokenize_prompt
from ..errors import ChatTemplateError
from ..schema.limits import check_context_bytes
from .llama import LlamaModel
from ..formats.prompt import Message
from .session import lcp

_QUERY_MARK = "\x00ondevice-query\x00"


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
            return text, self.model.tokenize(text)
        return text, tokenize_prompt(text, spans, self._control, self.model.tokenize)

    def prepare(self, messages: list[Message], tools_variable: Optional[list[Any]], date_string: Optional[str],
                query: Optional[str], max_token_bytes: int) -> tuple[list[int], int]:
        """(prompt tokens, length of its tools prefix): the prefix ends where `query` (its last
        occurrence in the last message; default: that message's whole text) begins."""
        check_context_bytes(sum(len(text.encode("utf-8")) for text in strings_of([messages, tools_variable])),
                            self.model.n_ctx, max_token_bytes)
        prefix_text = self.render(messages, date_string, tools_variable)
        last = messages[-1].get("content")
        if isinstance(last, str) and last:
            query = last if query is None else query
            at = last.rfind(query) if query else -1
            if at >= 0:
                marked = list(messages)
                marked[-1] = dict(marked[-1], content=last[:at] + _QUERY_MARK + last[at + len(query):])
                prefix_text = self.render(marked, date_string, tools_variable).split(_QUERY_MARK, 1)[0]
        _, prompt = self.tokenize(messages, date_string, tools_variable)
        # Special-token parsing here is harmless: these tokens only measure how much of `prompt` is
        # the tools prefix (content with control-token text just shortens the match).
        return prompt, lcp(self.model.tokenize(prefix_text), prompt)


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
