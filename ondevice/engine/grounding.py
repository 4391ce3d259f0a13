"""Whether a call's arguments come from the conversation: a call that rests on values nobody gave
is one nobody asked for.

A small model given tools calls one of them even when none fits ("Who won the game yesterday?"
with a stock-price tool), filling the arguments with values it makes up. The evidence is each
string or number value of a call, except those that say nothing about the user's words: neutral
ones (0, 1, "") and those the parameter's own schema gives (an enum or const value, its default, a
number its description names: "1 for Bangkok", "Default is 52"). A call is grounded when

1. at least one of its evidence values appears in the conversation's text (the messages and tool
   results, not the tool definitions), if it has any, and
2. every required argument the tool's schema leaves open (no enum, no const, not a boolean) with
   evidence values has one that appears there: a required value the user never gave is one the
   model should ask for, not invent (the stock-price call's date), and
3. it is not an earlier call of the same answer again with only values changed that the text does
   not mention: `estimate_derivative(method="forward")` after `method="central"` for "how steep is
   x**2 at 5?" is a choice nobody made (a choice the user named, "in celsius and in fahrenheit",
   is a second request).

A value appears when a word of a string value (other than a stop word such as "the" or "of") is a
substring of the text ("NY" in "NYC", "Tokyo" in "What time is it in Tokyo?") or shares its first
five letters with a word of it ("Germany" for "German"), a one-character string is a word of it
("X" in "stock 'X'"), the initials of a string of several words are a word of it or start one a
letter longer ("New York" for "NYC"; not "Los Angeles" for "Lakers"), a code of capitals holds the
initials of two of its words in order ("GBP" for "British pounds"), a clock time's hour is one of
its numbers ("19:00" for "7 pm"), or a number is one of its numbers: written in digits (sign and
digit-group commas aside), as a word ("two", "dozen", "third"), or as a percentage of a fraction
("7%" for 0.07).
The check is lexical and format-free: it reads ``{"name", "arguments"}`` values, whatever syntax
the model wrote them in. Chosen on BFCL cases disjoint from the judged sample (`ondevice bench
nocall`, docs/benchmarks.md).
"""

from __future__ import annotations

import re
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Sequence

_WORD = re.compile(r"\w+")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_DIGIT_GROUP = re.compile(r"(?<=\d),(?=\d{3}\b)")
_CODE = re.compile(r"[A-Z]{2,5}")
_CLOCK = re.compile(r"(\d{1,2}):\d{2}(?::\d{2})?")
_NUMBER_WORDS: dict[str, float] = {
    **{w: float(i) for i, w in enumerate(
        "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
        "sixteen seventeen eighteen nineteen twenty".split())},
    **{w: float(i + 1) for i, w in enumerate(
        "first second third fourth fifth sixth seventh eighth ninth tenth".split())},
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80, "ninety": 90,
    "hundred": 100, "thousand": 1000, "million": 1e6, "billion": 1e9, "dozen": 12, "half": 0.5,
    "once": 1, "twice": 2, "single": 1, "double": 2, "pair": 2, "couple": 2,
}
# Words that say nothing of a value by themselves: "The Metropolitan Museum of Art" is not mentioned by
# "the" and "of" in "Who are the famous dancers of the 19th century?".
_STOP_WORDS = frozenset("a an and at by de for from in of on or the to with".split())
_STEM = 5  # a word and a value's word sharing their first 5 letters are one word ("german", "germany")


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


def _neutral(value: Any) -> bool:
    """0, 1 or "": what a model fills in for "nothing said" (a leaf: a string or a number, never a bool)."""
    return value == "" if isinstance(value, str) else value in (0, 1)


def _numbers(text: str) -> set[float]:
    """The numbers a (casefolded) text names: in digits (digit-group commas aside) or as words."""
    found = {float(n) for n in _NUMBER.findall(_DIGIT_GROUP.sub("", text))}
    return found | {_NUMBER_WORDS[w] for w in _WORD.findall(text) if w in _NUMBER_WORDS}


def _documented(value: Any, schema: Any) -> bool:
    """Whether the parameter's own schema gives `value`: one of its enum or const values, its default,
    or a value its description names ("1 for Bangkok", "Default is 52"). Such a value is the tool's
    vocabulary, not something the user had to say (an id for the user's words, a documented default)."""
    if not isinstance(schema, Mapping):
        return False
    if value in (schema.get("enum") or ()) or ("const" in schema and schema["const"] == value):
        return True
    if "default" in schema and schema["default"] == value:
        return True
    description = schema.get("description")
    # Numbers only: a string a description names is as often an example the model copied ("such as
    # 'Los Angeles, CA'") as a documented value.
    return isinstance(description, str) and not isinstance(value, str) and float(value) in _numbers(description.casefold())


class Grounding:
    """The conversation's words and numbers, read once; `grounded` checks each call against them."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._sequence = _WORD.findall(text)
        self.words = frozenset(self._sequence)
        self._pairs = frozenset(a[0] + b[0] for a, b in zip(self._sequence, self._sequence[1:]))
        self.numbers = _numbers(text)
        self._stems = frozenset(w[:_STEM] for w in self.words if len(w) >= _STEM)

    def mentions(self, value: Any) -> bool:
        """Whether the text mentions `value` (a string or a number), in one of the forms above."""
        if isinstance(value, str):
            words = _WORD.findall(value.casefold())
            content = [w for w in words if w not in _STOP_WORDS] or words
            if any(word in self.text for word in content if len(word) > 1 or word.isdigit()):
                return True
            if any(len(w) >= _STEM and w[:_STEM] in self._stems for w in words):  # "Germany" for "german"
                return True
            if len(value.strip()) == 1 and value.strip().casefold() in self.words:
                return True
            if len(words) > 1:  # an abbreviation: "New York" for "NYC", "San Francisco" for "SF"
                initials = "".join(w[0] for w in words)
                if any(w.startswith(initials) and len(w) <= len(initials) + 1 for w in self.words):
                    return True
            if _CODE.fullmatch(value) and any(_in_order(pair, value.casefold()) for pair in self._pairs):
                return True  # a code holding the initials of two words: "GBP" for "British pounds"
            clock = _CLOCK.fullmatch(value.strip())
            return bool(clock) and float(int(clock.group(1)) % 12 or 12) in self.numbers
        magnitude = abs(float(value))
        return any(abs(form - n) < 1e-9 for form in (magnitude, magnitude * 100) for n in self.numbers)

    def _evidence(self, value: Any, schema: Any) -> Optional[bool]:
        """Whether the mentioned values among `value`'s leaves include one (None: no leaf is evidence:
        neutral, or given by the parameter's schema)."""
        seen = False
        for leaf in _leaves(value):
            if _neutral(leaf) or _documented(leaf, schema):
                continue
            if self.mentions(leaf):
                return True
            seen = True
        return False if seen else None

    def grounded(self, call: Any, parameters: Optional[Mapping[str, Any]] = None, earlier: Sequence[Any] = ()) -> bool:
        """Whether `call` (a ``{"name", "arguments"}`` value) rests on the conversation: rules 1 to 3
        of the module's docstring, rule 2 where `parameters` (the tool's JSON Schema) is given, rule 3
        against `earlier` (the calls before it in the same answer)."""
        arguments = call.get("arguments") if isinstance(call, dict) else None
        if any(self._variant(call, before) for before in earlier):
            return False
        if not isinstance(arguments, dict):
            return self._evidence(arguments, None) is not False
        schema = parameters if isinstance(parameters, Mapping) else {}
        properties = schema.get("properties") if isinstance(schema.get("properties"), Mapping) else {}
        required = schema.get("required") if isinstance(schema.get("required"), list) else []
        found = {name: self._evidence(value, properties.get(name)) for name, value in arguments.items()}
        if False in found.values() and True not in found.values():
            return False  # rule 1: values, and none of them mentioned
        return not any(found.get(name) is False for name in required if _open(properties.get(name)))

    def _variant(self, call: Any, before: Any) -> bool:
        """Rule 3: `call` is `before` again (same tool) with only values changed that nobody named."""
        if not (isinstance(call, dict) and isinstance(before, dict) and call.get("name") == before.get("name")):
            return False
        now, then = call.get("arguments"), before.get("arguments")
        if not (isinstance(now, dict) and isinstance(then, dict)):
            return False
        changed = [name for name in now.keys() | then.keys() if now.get(name) != then.get(name)]
        return bool(changed) and not any(self.mentions(leaf) for name in changed for leaf in _leaves(now.get(name)))


def _in_order(letters: str, word: str) -> bool:
    """Whether `letters` appear in `word` in this order (not necessarily adjacent)."""
    rest = iter(word)
    return all(letter in rest for letter in letters)


def _open(schema: Any) -> bool:
    """Whether a parameter's schema leaves its value open (the model must take it from the user), not
    a choice among listed values or a yes/no."""
    if not isinstance(schema, Mapping):
        return True
    if "enum" in schema or "const" in schema or schema.get("type") == "boolean":
        return False
    choices = schema.get("anyOf") or schema.get("oneOf")
    if isinstance(choices, list) and choices and all(not _open(c) or c.get("type") == "null" for c in choices
                                                     if isinstance(c, Mapping)):
        return False
    return True


def grounded(call: Any, text: str, parameters: Optional[Mapping[str, Any]] = None) -> bool:
    """Whether `call` rests on `text` (from `conversation_text`): see `Grounding.grounded`."""
    return Grounding(text).grounded(call, parameters)
