"""A request's prompt tokens: the model's chat template rendered, control tokens only from its markup,
how much of the prompt is the tools prefix (the part the prefix cache keeps), and where its assistant
turns start (where a follow-up request picks up)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from ..errors import ChatTemplateError
from ..formats.prompt import Message
from ..schema.limits import check_context_bytes
from ..template.chat_template import ChatTemplate, Span
from ..template.control_tokens import ControlTokens, refuse_unmapped_control_text, tokenize_prompt
from .llama import LlamaModel


@dataclass(frozen=True)
class Prompt:
    """A request's prompt tokens; `prefix`: how many of them the requests with the same tools share
    (the prefix cache keeps them); `turns`: where an assistant turn starts (the generation prompt's
    tokens), the places a follow-up request may pick up from."""

    tokens: list[int]
    prefix: int
    turns: tuple[int, ...] = ()


class PromptBuilder:
    """Renders and tokenizes prompts for one model and chat template."""

    def __init__(self, model: LlamaModel, template: ChatTemplate, date_string: Optional[str]):
        self.model = model
        self.template = template
        self.date_string = date_string
        self._control: Optional[ControlTokens] = None
        self._control_ids: Optional[frozenset[int]] = None

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
                query_offset: Callable[[str], int], max_token_bytes: int,
                variables: Optional[dict[str, Any]] = None) -> Prompt:
        """The prompt's tokens, where its shared prefix ends and where its assistant turns start.

        The prefix ends where the query of the conversation's first user turn begins (`query_offset`:
        the format's, into that turn's content), so every turn of a conversation and every request
        with the same tools share it. The turns are the places where the prompt's generation prompt
        (what the template adds to ask for an answer) also stands earlier: each answer in the history.
        The template is rendered once more without the generation prompt to find it; the prompt is
        tokenized once and both positions are read off its own tokens. `variables`: the template's
        own switches (Qwen3's ``enable_thinking``)."""
        check_context_bytes(sum(len(text.encode("utf-8")) for text in strings_of([messages, tools_variable])),
                            self.model.n_ctx, max_token_bytes)
        text, spans, prompt = self._render_tokens(messages, date_string, tools_variable, variables)
        prefix_bytes = len(text[:query_start(text, spans, messages, query_offset)].encode("utf-8"))
        date = self.date_string if date_string is None else date_string
        try:
            bare = self.template.render(messages, add_generation_prompt=False, date_string=date, tools=tools_variable,
                                        variables=variables)
        except ChatTemplateError:  # a template that insists on ending with a user turn: no turns found
            bare = ""
        turns: tuple[int, ...] = ()
        if bare and text.startswith(bare) and len(bare) < len(text):
            generation = prompt[self._tokens_within(prompt, len(bare.encode("utf-8"))):]
            if generation and generation[0] in self.control_ids():  # markup, never ordinary text
                turns = tuple(i for i in range(len(prompt) - len(generation) + 1)
                              if prompt[i] == generation[0] and prompt[i:i + len(generation)] == generation)
        return Prompt(prompt, self._tokens_within(prompt, prefix_bytes), turns)

    def control_ids(self) -> frozenset[int]:
        """The model's control tokens (chat markup)."""
        if self._control_ids is None:
            self._control_ids = frozenset(self.model.control_tokens.values())
        return self._control_ids

    def _render_tokens(self, messages: list[Message], date_string: Optional[str], tools: Optional[list[Any]],
                       variables: Optional[dict[str, Any]] = None) -> tuple[str, Optional[list[Span]], list[int]]:
        """The rendered prompt, where the caller's content lies in it (None: unknown), and its tokens."""
        date = self.date_string if date_string is None else date_string
        text, spans = self.template.render_with_spans(messages, add_generation_prompt=True, date_string=date,
                                                      tools=tools, variables=variables)
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


def query_start(text: str, spans: Optional[list[Span]], messages: list[Message],
                query_offset: Callable[[str], int]) -> int:
    """Where the query of the first user turn begins in the rendered `text` (`query_offset` into its
    content), found through the content's span; without a user turn, the last message's content start;
    len(text) when it cannot be found."""
    turn = next((m for m in messages if m.get("role") == "user"), messages[-1] if messages else None)
    content = turn.get("content") if turn else None
    if not spans or not isinstance(content, str) or not content.strip():
        return len(text)
    at = min(max(query_offset(content), 0), len(content))
    core, lead = content.strip(), len(content) - len(content.lstrip())  # a span holds the content less its blanks
    for start, end in spans:
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
