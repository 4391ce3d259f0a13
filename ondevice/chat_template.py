"""Render chat messages with a model's own Jinja chat template, as `transformers` does.

`transformers`' ``apply_chat_template(..., tokenize=False, add_generation_prompt=True)`` renders in a
sandboxed Jinja environment with ``trim_blocks`` and ``lstrip_blocks``, a ``tojson`` filter that keeps
non-ASCII characters, and the globals ``raise_exception`` and ``strftime_now``; the tokenizer's special
tokens (``bos_token``, ``eos_token``) are template variables. We render the same way so that the
prompt the GGUF sees is character for character the one the fine-tune was trained on.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Optional

import jinja2
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .errors import ChatTemplateError


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: Optional[int] = None,
            separators: Optional[tuple[str, str]] = None, sort_keys: bool = False) -> str:
    # Jinja's built-in tojson escapes HTML characters and sorts keys; transformers' does neither.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


# Bounds on what one render may build, so a template (the GGUF's or --chat-template's) that loops or
# multiplies without end fails with a message instead of hanging or exhausting memory. A real chat
# template uses a few dozen range items and no large products.
MAX_RANGE_ITEMS = 100_000  # over all range() calls of one render
MAX_PRODUCT_ITEMS = 1_000_000  # characters/items of a repeated string or list
MAX_POWER_BITS = 4096  # bits of an integer power


class _TemplateLimit(Exception):
    """A render went past one of the bounds above."""


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
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
    ) -> str:
        """The prompt text for `messages`; `date_string` pins Llama 3.2's "Today Date" line."""
        variables: dict[str, Any] = {
            "messages": messages,
            "add_generation_prompt": add_generation_prompt,
            "bos_token": self.bos_token,
            "eos_token": self.eos_token,
        }
        if date_string is not None:
            variables["date_string"] = date_string
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
