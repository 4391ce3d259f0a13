"""The interface every tool format implements: how a request is prompted, what the grammar lets the
model write, and how that text is read back into calls."""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Protocol, Sequence

from ..grammar.calls import CallOptions, Markers
from ..schema.tools import Tool
from .blocks import ToolCall, typed_calls
from .result import CallResult

Message = dict[str, Any]  # one chat message: role, content, and (native) tool_calls
_TOOLS_USE = re.compile(r"\btools\b")


def takes_tools(template: str) -> bool:
    """Whether a chat template reads the ``tools`` variable."""
    return bool(_TOOLS_USE.search(template))


class Tokenizer(Protocol):
    """What a format needs of the model: its text <-> tokens (the engine's `LlamaModel` is one)."""

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """The tokens of `text` (special: control-token text becomes its token)."""
        ...

    def detokenize(self, tokens: Sequence[int], special: bool = True) -> bytes:
        """The bytes `tokens` spell."""
        ...


class ToolFormat:
    """One way of laying out tool calls. Subclasses set the attributes and implement the methods;
    `formats.register` makes one available by its name (settings, manifests, --tool-format).

    summary: one line for help texts (``--tool-format``).
    tags: the (open, close) tags around a call block; nothing outside the format names them. A format
    without tags gives what its calls open with and no closing tag (``("[", "")`` for a bare array).
    stream_head: the text an answer with calls starts with (the stream reader waits for it).
    call_end: bytes a token must hold for a call to have just ended (asked before parsing the output).
    block_per_call: each call is a tagged block of its own (else one block holds the list).
    template_layout: the conversation is the chat template's own messages, the tools its ``tools``
    variable, tool results ``tool`` turns (else the card's: tools in the first user turn).
    arguments_key: the key a call object holds its arguments under (Llama 3: ``"parameters"``).
    claims_template: detection picks this format for a template it recognizes (see `recognize`).
    reader_class: a stream reader of its own, for calls that are not ``{"name", "arguments"}`` objects.
    no_call: how "no call" is answered by default in this format (the setting no_call's choices).
    """

    name: str = ""
    summary: str = ""
    tags: tuple[str, str] = ("", "")
    stream_head: str = ""
    call_end: bytes = b"}"
    block_per_call: bool = False
    template_layout: bool = False
    arguments_key: str = "arguments"
    claims_template: bool = True
    reader_class: Optional[type] = None  # the stream reader (formats/stream.py's ToolCallReader where None)
    no_call: str = "list"  # how "no call" is answered unless the settings or the model's manifest say

    def messages(self, query: str, tools: Optional[list[Any]], history: Optional[list[Message]]) -> list[Message]:
        """The messages of a request: the history, then the query."""
        raise NotImplementedError

    def template_messages(self, messages: list[Message]) -> list[Message]:
        """The messages as the chat template gets them (a format whose template checks the call ids
        rewrites them: Mistral's)."""
        return messages

    def recognize(self, template: str) -> Optional[str]:
        """Why a chat template (its source) is this format's, in a few words; None if it is not. A
        format with `claims_template` False is named in the reason but not chosen by detection."""
        return None

    def reads_probe(self, answer: str, call: Any) -> bool:
        """Whether `answer` (what a chat template writes for an assistant turn holding `call`, a
        ``{"name", "arguments"}`` value) is this format's layout: its reader finds `call` first there."""
        found = self.complete_calls(answer)
        return bool(found) and found[0][0] == call

    def plain_markers(self) -> Markers:
        """The tags written as text (the grammar's markers where no tokenizer says otherwise)."""
        return Markers.plain(self.tags)

    def starts_calls(self, text: str) -> bool:
        """Whether an answer's text is the calls' layout (not a sentence or a JSON content value)."""
        return bool(self.tags[0]) and text.startswith(self.tags[0])

    def may_start_calls(self, text: str) -> bool:
        """Whether a growing answer's text is, or may still become, the calls' layout (a prefix of
        the opening tag counts: the rest of the tag may follow)."""
        tag = self.tags[0]
        return bool(tag) and (text.startswith(tag) or tag.startswith(text))

    def empty_answer(self) -> str:
        """The text of an answer that holds no call, as `close_text` writes it."""
        return ""

    def query_offset(self, content: str) -> int:
        """Where the query begins in the content of a conversation's first user turn: the prompt up
        to there (system prompt, tools) is the part requests with other queries share."""
        return 0

    def template_tools(self, tools: Optional[list[Any]]) -> Optional[list[dict[str, Any]]]:
        """The chat template's ``tools`` variable (None: the template gets none)."""
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        """The Lark grammar of an answer (the callable tools already chosen by `options`)."""
        raise NotImplementedError

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        """The calls in an answer; None when the text is not a well-formed answer."""
        raise NotImplementedError

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        """Each complete call at the start of an answer, with the index just past it."""
        raise NotImplementedError

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        """The valid answer made of the complete calls of a cut `text` (``calls[:keep]``)."""
        raise NotImplementedError

    def closed_tokens(self, model: Tokenizer, out: list[int], text: str, markers: Markers) -> list[int]:
        """The tokens of `text` (a closed form of the output `out`), tags written as the model writes them."""
        return model.tokenize(text, special=False)

    def free_stop(self) -> Optional[Callable[[str], bool]]:
        """When free generation (no grammar) has written a whole answer (None: at the end of turn)."""
        return None

    def answer_turn(self, result: CallResult) -> Message:
        """The assistant turn that records an answer in the conversation."""
        raise NotImplementedError

    def reply_content(self, text: str) -> str:
        """The message content of an answer without calls (a sentence the model wrote, or "")."""
        return ""


class TemplateFormat(ToolFormat):
    """A format whose model's own chat template renders the tools, the calls and their results (as
    Qwen2.5's and Llama 3's do): the messages are the conversation as the caller gave it, the tools
    go to the template's ``tools`` variable, an answer goes back as an assistant turn's ``tool_calls``."""

    template_layout = True
    no_call = "text"  # a model trained on its template's tools says "no tool fits" in words

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

    def closed_tokens(self, model: Tokenizer, out: list[int], text: str, markers: Markers) -> list[int]:
        # The output's own tokens as far as they spell `text` (a tag may be a special token or text),
        # the rest re-tokenized as plain text: a token straddling the cut, and what the closing appends
        # ("]", a closing tag), which the output's next tokens do not spell.
        target = text.encode("utf-8")
        kept: list[int] = []
        size = 0
        for token in out:
            piece = model.detokenize([token])
            if target[size:size + len(piece)] != piece:
                break
            kept.append(token)
            size += len(piece)
        rest = target[size:].decode("utf-8", errors="replace")
        return kept + (model.tokenize(rest, special=False) if rest else [])

    def answer_turn(self, result: CallResult) -> Message:
        turn: dict[str, Any] = {"role": "assistant", "content": result.message or ""}
        if result.reasoning:  # the template writes it back where the model thought (Qwen3's reasoning_content)
            turn["reasoning_content"] = result.reasoning
        if result.calls:
            turn["tool_calls"] = [{"type": "function", "function": c.to_dict()} for c in result.calls]
        elif result.calls is None:
            turn["content"] = result.text
        return turn

    def reply_content(self, text: str) -> str:
        return "" if self.starts_calls(text) else text.strip()


class ConsecutiveCallsFormat(TemplateFormat):
    """A template format whose calls stand one after another from the answer's start (`stream_head`),
    nothing around or between them (Ministral 3's, FunctionGemma's): a cut answer keeps its complete
    calls; a whole answer is its calls to the last character; any other text is a plain reply."""

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        calls = self.complete_calls(text)[:keep]
        return text[:calls[-1][1]] if calls else ""

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        body = text.strip()
        if not body.startswith(self.stream_head):
            return []  # a plain reply
        found = self.complete_calls(body)
        if not found or found[-1][1] != len(body):
            return None
        return typed_calls([value for value, _ in found])
