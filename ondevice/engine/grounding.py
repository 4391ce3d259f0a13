"""Whether a call's arguments come from the conversation: a call none of whose values the
conversation mentions is one nobody asked for.

A small model given tools calls one of them even when none fits ("Who won the game yesterday?"
with a stock-price tool), filling the arguments with values it makes up. A call is grounded when
at least one of its string or number values appears in the conversation's text (the messages and
tool results, not the tool definitions): a word of a string value as a substring of the text (so
"NY" is found in "NYC", "Tokyo" in "What time is it in Tokyo?"), the initials of a string of
several words as the start of a word of the text ("New York" for "NYC"), a number among the text's
numbers.
A call with no such value (no arguments, booleans only) gives no evidence and counts as grounded.
The check is lexical and format-free: it reads ``{"name", "arguments"}`` values, whatever syntax
the model wrote them in.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterator, Optional, Sequence

_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def conversation_text(messages: Sequence[dict[str, Any]], query_offset: Callable[[str], int] = lambda _: 0) -> str:
    """The text of every message (string content, or the text parts of a list), casefolded; a user
    message from `query_offset(content)` on (a format that writes the tools into a user turn says
    where the user's own words begin)."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content[query_offset(content):] if message.get("role") == "user" else content)
        elif isinstance(content, list):
            parts += [p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n".join(parts).casefold()


def _leaves(value: Any) -> Iterator[Any]:
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    elif not isinstance(value, bool) and isinstance(value, (str, int, float)):
        yield value


def _number_forms(value: float) -> set[str]:
    forms = {str(value)}
    if float(value).is_integer():
        forms.add(str(int(value)))
    return forms


def grounded(call: Any, text: str) -> bool:
    """Whether `call` (a ``{"name", "arguments"}`` value) has a value that `text` (from
    `conversation_text`) mentions, or no string or number value at all."""
    arguments = call.get("arguments") if isinstance(call, dict) else None
    values = list(_leaves(arguments))
    if not values:
        return True
    numbers = set(_NUMBER.findall(text))
    starts: Optional[tuple[str, ...]] = None
    for value in values:
        if isinstance(value, str):
            words = _WORD.findall(value.casefold())
            if any(word in text for word in words if len(word) > 1 or word.isdigit()):
                return True
            if len(words) > 1:  # an abbreviation: "New York" for "NYC", "San Francisco" for "SF"
                starts = starts if starts is not None else tuple(_WORD.findall(text))
                initials = "".join(w[0] for w in words)
                if any(t.startswith(initials) for t in starts):
                    return True
        elif _number_forms(value) & numbers:
            return True
    return False
