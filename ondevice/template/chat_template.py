"""Render chat messages with a model's own Jinja chat template, as `transformers` does.

`transformers`' ``apply_chat_template(..., tokenize=False, add_generation_prompt=True)`` renders in a
sandboxed Jinja environment with ``trim_blocks`` and ``lstrip_blocks``, a ``tojson`` filter that keeps
non-ASCII characters, and the globals ``raise_exception`` and ``strftime_now``; the tokenizer's special
tokens (``bos_token``, ``eos_token``) are template variables. We render the same way so that the
prompt the GGUF sees is character for character the one the fine-tune was trained on.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Optional

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from ..errors import ChatTemplateError


Span = tuple[int, int]
# A role is written into the template's markup as is, so it must be a plain word.
_ROLE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: Optional[int] = None,
            separators: Optional[tuple[str, str]] = None, sort_keys: bool = False) -> str:
    # Jinja's built-in tojson escapes HTML characters and sorts keys; transformers' does neither.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


class _Sandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox (no attribute starting with ``_``, no mutating methods), where reaching for
    an unsafe attribute fails at once instead of rendering as an empty undefined value."""

    def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
        raise SecurityError(f"access to attribute {attribute!r} of a {type(obj).__name__!r} object is not allowed")


# Bounds on what one render may build, so a template (the GGUF's or --chat-template's) that loops or
# multiplies without end fails with a message instead of hanging or exhausting memory. A real chat
# template uses a few dozen range items and no large products.
MAX_RANGE_ITEMS = 100_000  # over all range() calls of one render
MAX_PRODUCT_ITEMS = 1_000_000  # characters/items of a repeated string or list
MAX_POWER_BITS = 4096  # bits of an integer power


class _TemplateLimit(Exception):
    """A render went past one of the bounds above."""


class _BoundedEnvironment(_Sandbox):
    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_PRODUCT_ITEMS:
                    raise _TemplateLimit(f"a repeated string or list of {len(seq)} x {n} items (at most {MAX_PRODUCT_ITEMS})")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int):
            if right > 0 and abs(left) > 1 and right * abs(left).bit_length() > MAX_POWER_BITS:
                raise _TemplateLimit(f"the power {left} ** {right} (at most {MAX_POWER_BITS} bits)")
        return super().call_binop(context, operator, left, right)


class _BudgetRange:
    """`range` for one render: every call draws from one budget of MAX_RANGE_ITEMS items."""

    def __init__(self) -> None:
        self.left = MAX_RANGE_ITEMS

    def __call__(self, *args: int) -> range:
        items = range(*args)
        self.left -= len(items)
        if self.left < 0:
            raise _TemplateLimit(f"loops over more than {MAX_RANGE_ITEMS} range() items")
        return items


@lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    # GGUF files come from anywhere: their templates run sandboxed, without access to Python internals,
    # and bounded in what one render may build.
    env = _BoundedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"the chat template does not compile (line {exc.lineno}: {exc.message})") from exc
    except Exception as exc:  # e.g. RecursionError on absurdly nested blocks
        raise ChatTemplateError(f"the chat template does not compile ({type(exc).__name__}: {exc})") from exc


@dataclass(frozen=True)
class ChatTemplate:
    """A model's chat template with the special tokens it refers to."""

    source: str
    bos_token: str = ""
    eos_token: str = ""

    def render(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        date_string: Optional[str] = None,
        tools: Optional[list[Any]] = None,
        variables: Optional[dict[str, Any]] = None,
    ) -> str:
        """The prompt text for `messages`; `date_string` pins Llama 3.2's "Today Date" line; `tools`
        (the OpenAI layout) is the template's ``tools`` variable, as transformers passes it;
        `variables`: the template's own switches (Qwen3's ``enable_thinking``)."""
        variables = {
            **(variables or {}),
            "messages": _arguments_as_objects(messages),
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if date_string is not None:
            variables["date_string"] = date_string
        if tools is not None:
            variables["tools"] = tools
        variables["range"] = _BudgetRange()
        template = _compile(self.source)
        try:
            return template.render(**variables)
        except jinja2.exceptions.TemplateError as exc:  # including raise_exception(...) in the template
            raise ChatTemplateError(f"the chat template refused the messages: {exc}") from exc
        except _TemplateLimit as exc:
            raise ChatTemplateError(f"the chat template builds too much: {exc}; fix the template "
                                    "(--chat-template FILE replaces the model's)") from exc
        except Exception as exc:  # the template's own code failed: 1/0, a bad index, range(10**9), ...
            raise ChatTemplateError(f"the chat template failed on the messages ({type(exc).__name__}: {exc}); "
                                    "fix the template (--chat-template FILE replaces the model's)") from exc

    def render_with_spans(
        self,
        messages: list[dict[str, Any]],
        add_generation_prompt: bool = True,
        date_string: Optional[str] = None,
        tools: Optional[list[Any]] = None,
        variables: Optional[dict[str, Any]] = None,
    ) -> tuple[str, Optional[list[Span]]]:
        """The prompt text and where the caller's content lies in it, as (start, end) character spans.

        Every string in the messages and `tools` except roles and keys is content. It is rendered a second time
        with each content string wrapped in markers holding a random nonce (inside its leading and
        trailing whitespace, so a template's ``trim`` acts the same); the markers are then removed and
        must leave exactly the first rendering. Spans are None when they do not, i.e. when the
        template transforms content beyond trimming or escaping (slicing, case changes, ASCII-only
        JSON) or refuses marked strings (it checks their form): then content and markup cannot be
        told apart.
        """
        for i, message in enumerate(messages):
            role = message.get("role") if isinstance(message, dict) else None
            if not isinstance(role, str) or not _ROLE.fullmatch(role):
                raise ChatTemplateError(
                    f"message #{i}: expected 'role' to be a plain word such as 'user' or 'assistant', got {role!r}"
                )
        messages = _arguments_as_objects(messages)  # before marking: marked JSON text no longer parses
        text = self.render(messages, add_generation_prompt, date_string, tools, variables)
        nonce = secrets.token_hex(8)
        open_mark, close_mark = f"\ue000{nonce}\ue001", f"\ue002{nonce}\ue001"
        try:
            marked = self.render(_mark(messages, open_mark, close_mark), add_generation_prompt, date_string,
                                 None if tools is None else _mark(tools, open_mark, close_mark), variables)
        except ChatTemplateError:  # the template checks a string's form (Mistral's 9-character call ids)
            return text, None
        return text, _unmark(marked, text, open_mark, close_mark)


def _arguments_as_objects(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`messages` with each assistant tool call's ``arguments`` given as JSON text (OpenAI's layout)
    replaced by the object it holds: templates follow transformers' convention, an object they write
    with ``tojson``; text would reach the model as a quoted string. Text that is no JSON object stays."""
    out = messages
    for i, message in enumerate(messages):
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        if not isinstance(calls, list):
            continue
        new_calls = []
        for call in calls:
            function = call.get("function") if isinstance(call, dict) else None
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str):
                try:
                    value = json.loads(arguments)
                except ValueError:
                    value = None
                if isinstance(value, dict):
                    call = {**call, "function": {**function, "arguments": value}}
            new_calls.append(call)
        if out is messages:
            out = list(messages)
        out[i] = {**message, "tool_calls": new_calls}
    return out


def _mark(value: Any, open_mark: str, close_mark: str, key: Optional[str] = None) -> Any:
    if isinstance(value, str):
        core = value.strip()
        if key == "role" or not core:
            return value
        start = len(value) - len(value.lstrip())
        return value[:start] + open_mark + core + close_mark + value[start + len(core):]
    if isinstance(value, dict):
        return {k: _mark(v, open_mark, close_mark, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mark(v, open_mark, close_mark) for v in value]
    return value


def _unmark(marked: str, expected: str, open_mark: str, close_mark: str) -> Optional[list[Span]]:
    pieces: list[str] = []
    spans: list[Span] = []
    length = pos = 0
    while True:
        start = marked.find(open_mark, pos)
        if start < 0:
            break
        end = marked.find(close_mark, start)
        if end < 0:
            return None
        pieces.append(marked[pos:start])
        length += start - pos
        content = marked[start + len(open_mark):end]
        if open_mark in content:
            return None
        pieces.append(content)
        spans.append((length, length + len(content)))
        length += len(content)
        pos = end + len(close_mark)
    pieces.append(marked[pos:])
    if marked.count(close_mark) != len(spans) or "".join(pieces) != expected:
        return None
    return spans
