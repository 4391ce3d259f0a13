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


@lru_cache(maxsize=8)
def _compile(source: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    try:
        return env.from_string(source)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"the chat template does not compile (line {exc.lineno}: {exc.message})") from exc


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
        try:
            return _compile(self.source).render(**variables)
        except jinja2.exceptions.TemplateError as exc:
            raise ChatTemplateError(f"the chat template refused the messages: {exc}") from exc
