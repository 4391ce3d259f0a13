"""The rules of the tool-call grammar, as llguidance Lark: each format (ondevice.formats) builds an
answer's grammar from them, and `CallOptions` says what that grammar allows besides the calls.

Each call is ``{"name": <a given tool's name>, "arguments": <an object valid for that tool>}`` in the
compact ``json.dumps`` layout the fine-tune was trained on (", " and ": " separators). Whitespace is
bounded: none inside a call; the formats bound it around and between calls.

A format's tags are written the way the model itself emits them (`Markers`): as text for a
tokenizer that spells a tag with ordinary pieces, or as the special token for one that has it as a
single token (Qwen2.5's 151657/151658 for the Hermes tags). The tags themselves are each format's
(ondevice/formats). With ``no_call="text"`` the grammar also admits, instead of the
tool-call block, a plain sentence (the model's own way of saying no tool fits) that cannot start or
contain a tag, of bounded length (`message_rule`).

Why llguidance rather than llama.cpp's GBNF: measured here on the 128k Llama 3 vocabulary, a GBNF mask
costs about 15 ms per token against about 0.1 ms, and llguidance reports the tokens the grammar forces
(so they are appended without sampling) and compiles JSON Schema itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Callable, Optional, Sequence

from llguidance import LLParserLimits

from ..errors import ModelFileError, SettingsError, ToolChoiceError
from ..schema.tools import Tool
from ..settings import CARD, Settings, check_setting
from ..structured import ContentFormat

# The JSON layout inside a call: Python's json.dumps defaults, no free whitespace.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

@dataclass(frozen=True)
class Markers:
    """A format's tags as the model emits them: Lark expressions, and the token ids of each tag.

    ``special`` tags are single special tokens (written ``<[id]>`` in the grammar, so llguidance
    matches the token itself); plain tags are text (a Lark string literal). `for_tokenizer` decides;
    `plain` is the text form (no tokenizer at hand).
    """

    open_text: str
    close_text: str
    open_lark: str
    close_lark: str
    special: bool = False
    open_ids: tuple[int, ...] = ()
    close_ids: tuple[int, ...] = ()

    @classmethod
    def plain(cls, tags: tuple[str, str]) -> "Markers":
        """The tags `(open, close)` written as text."""
        return cls(tags[0], tags[1], json.dumps(tags[0]), json.dumps(tags[1]))

    @classmethod
    def for_tokenizer(cls, tags: tuple[str, str], tokenize: Callable[[str], list[int]],
                      is_special: Callable[[int], bool]) -> "Markers":
        """The markers of the tags `(open, close)` for a tokenizer: `tokenize` parses special tokens;
        `is_special` is llguidance's view."""
        open_ids, close_ids = tokenize(tags[0]), tokenize(tags[1])
        special = [len(ids) == 1 and is_special(ids[0]) for ids in (open_ids, close_ids)]
        if not tags[1]:  # a format with an opening tag only (Mistral's [TOOL_CALLS])
            special[1] = special[0]
        if special[0] != special[1]:
            raise ModelFileError(
                f"the tokenizer has only one of the tags as a special token: {tags[0]} -> {open_ids}, "
                f"{tags[1]} -> {close_ids}; expected both or neither")
        if not special[0]:
            return replace(cls.plain(tags), open_ids=tuple(open_ids), close_ids=tuple(close_ids))
        close_lark = f"<[{close_ids[0]}]>" if tags[1] else '""'
        return cls(tags[0], tags[1], f"<[{open_ids[0]}]>", close_lark, True, tuple(open_ids), tuple(close_ids))

    def tag_rules(self, open_rule: str = "tag_open", close_rule: str = "tag_close") -> list[str]:
        """Lark rules naming the two tags. Where they are special tokens, either spelling is the tag: a
        model with them as control tokens may still spell them in text pieces (Qwen2.5-Coder-0.5B puts
        far more probability on "<" than on its <tool_call> token)."""
        return [f"{rule}: {lark}" + (f" | {json.dumps(text)}" if self.special else "")
                for rule, lark, text in ((open_rule, self.open_lark, self.open_text),
                                         (close_rule, self.close_lark, self.close_text))]


@dataclass(frozen=True)
class CallOptions:
    """What the grammar allows beyond the tools' schemas.

    min_calls / max_calls bound the number of calls (max None: unbounded); allowed, when given, names
    the only tools that may be called (the prompt still lists every tool): OpenAI's ``tool_choice``
    and ``parallel_tool_calls``. no_call: "list" (an answer without a call is the format's empty
    list), "text" (it may also be a plain sentence, unless a call is
    required), "threshold" (the grammar of "text"; the decoder picks the branch by the probability
    of "no call", see engine/session.py's FirstBranch); message_max_chars bounds that sentence. markers:
    the format's tags as the model emits them (None: as text). tool_format: "card" (one list block) or "native" (one block per
    call, the model's own chat-template layout; see ondevice/formats). content: a response JSON Schema
    (structured outputs, see structured.py): where no call is required, the answer may (no tools: must) be one
    JSON value valid against it instead of the calls; no sentence is then admitted.
    """

    min_calls: int = 0
    max_calls: Optional[int] = None
    allowed: Optional[tuple[str, ...]] = None
    no_call: str = "list"
    message_max_chars: int = 600
    markers: Optional[Markers] = None
    tool_format: str = CARD
    content: Optional[ContentFormat] = None

    def __post_init__(self) -> None:
        if self.min_calls < 0 or (self.max_calls is not None and self.max_calls < self.min_calls):
            raise ToolChoiceError(f"call bounds: expected 0 <= min_calls <= max_calls, got {self.min_calls}..{self.max_calls}")
        for name in ("no_call", "tool_format"):  # the settings' own rules (a mode is required here)
            if getattr(self, name) is None:
                raise SettingsError(f"setting {name}: expected a value, got None")
            check_setting(name, getattr(self, name))
        if self.message_max_chars < 1:
            raise SettingsError(f"setting message_max_chars: expected an integer >= 1, got {self.message_max_chars!r}")

    @property
    def allows_text(self) -> bool:
        """Whether a sentence may stand instead of the tool-call block (never when a call is required)."""
        return self.no_call in ("text", "threshold") and self.min_calls == 0 and self.content is None

    @property
    def allows_content(self) -> bool:
        """Whether a JSON value (a response format's) may stand instead of the calls."""
        return self.content is not None and self.min_calls == 0

    def capped(self, max_calls: int) -> "CallOptions":
        """These options with at most `max_calls` calls (the setting max_calls; 0: no bound)."""
        if max_calls <= 0 or (self.max_calls is not None and self.max_calls <= max_calls):
            return self
        if self.min_calls > max_calls:
            raise ToolChoiceError(f"at least {self.min_calls} calls required, but the setting max_calls is {max_calls}")
        return replace(self, max_calls=max_calls)

    def key(self) -> str:
        return json.dumps([self.min_calls, self.max_calls, self.allowed, self.no_call, self.message_max_chars,
                           self.markers and self.markers.open_lark, self.markers and self.markers.close_lark,
                           self.tool_format,
                           self.content.enforced if self.content is not None else None])

    def callable_tools(self, tools: Sequence[Tool]) -> list[Tool]:
        """The tools a call may name; an allowed name that is not a tool is an error naming it."""
        if self.allowed is None:
            return list(tools)
        names = {t.name for t in tools}
        unknown = [n for n in self.allowed if n not in names]
        if unknown:
            raise ToolChoiceError(f"the tool choice names {unknown}, which are not among the tools {sorted(names)}")
        return [t for t in tools if t.name in self.allowed]


DEFAULT_OPTIONS = CallOptions()


def calls_rule(min_calls: int, max_calls: Optional[int], item: str = "call", sep: str = "SEP") -> str:
    """Lark for max(min_calls, 1)..max_calls `item`s separated by `sep` (max None: unbounded); zero
    calls are the caller's business (it makes the whole list optional)."""
    low = max(min_calls, 1)
    items = [item]
    if low > 1:
        items.append(f"({sep} {item}){{{low - 1}}}")
    if max_calls is None:
        items.append(f"({sep} {item})*")
    elif max_calls > low:
        items.append(f"({sep} {item}){{0,{max_calls - low}}}")
    return " ".join(items)


# What a model starts a call with in any spelling: a tag, a JSON object or list, a code fence. A
# sentence cannot start with one (so the model's own first token tells a call from a sentence, see
# engine/session.py's FirstBranch), in either format.
CALL_INTENT_STARTS = "<{[`"


def answer_rules(options: CallOptions, calls: str, optional: bool = False) -> list[str]:
    """The start rule of an answer: `calls` (a Lark expression; "" where no call can stand), or instead
    a sentence or a JSON value as `options` allow, with those rules. `optional`: the empty answer is
    also an answer without a call (formats whose calls are bare blocks, not one list)."""
    alternatives = ([calls] if calls else []) + (["message"] if options.allows_text else []) \
        + (["content"] if options.allows_content else [])
    start = " | ".join(alternatives) if alternatives else "EMPTY"
    if optional and options.min_calls == 0 and alternatives and not options.allows_content:
        start = f"({start})?"  # the empty answer: no call (also where a budget cuts before the first call)
    lines = [f"start: {start}"] + (['EMPTY: ""'] if start == "EMPTY" else [])
    if options.allows_text:
        lines.append(message_rule(options.message_max_chars))
    if options.allows_content:
        lines.append(content_rule(options.content))
    return lines


def message_rule(max_chars: int) -> str:
    # No tag can start or hide in the sentence: no "<" at all, and no blank first character.
    first = "<\\s{\\[`"
    return f"message: /[^{first}][^<]{{0,{max_chars - 1}}}/"


def content_rule(content: ContentFormat) -> str:
    """One JSON value valid against the response format's enforced schema, in the calls' layout."""
    schema = content.grammar_schema if isinstance(content.grammar_schema, dict) else {}
    return f"content: %json {json.dumps(dict(schema, **{'x-guidance': JSON_LAYOUT}))}"


def message_lark(max_chars: int) -> str:
    """The Lark source of a grammar admitting only the sentence (its first mask tells the tokens
    that can start a sentence from those that start the tool-call block)."""
    return "start: message\n" + message_rule(max_chars) + "\n"


def prose_lark(max_chars: int) -> str:
    """A sentence with no JSON or tag in it at all (no ``<{}[]`` or backtick; not opening with a
    parenthesis): what an answer restarted after a refused call may write, so the refused call
    cannot come back dressed as a sentence."""
    return f"start: message\nmessage: /[^<\\s{{}}\\[\\]`(][^<{{}}\\[\\]`]{{0,{max_chars - 1}}}/\n"


def call_rules(tools: Sequence[Tool], arguments_key: str = "arguments",
               after: Optional[dict[str, dict]] = None) -> list[str]:
    """The `call` rule: one of the tools' call objects (their arguments under `arguments_key`, then the
    members `after` gives, as name: JSON Schema: Mistral's call "id")."""
    lines = ["call: " + " | ".join(f"call_{i}" for i in range(len(tools)))]
    for i, tool in enumerate(tools):
        schema = dict(tool.call_schema(arguments_key, after), **{"x-guidance": JSON_LAYOUT})
        lines.append(f"call_{i}: %json {json.dumps(schema)}")
    return lines


def grammar_limits(settings: Settings) -> LLParserLimits:
    """llguidance's resource limits from the settings: building a grammar, one mask, grammar size."""
    return LLParserLimits(initial_lexer_fuel=settings.grammar_compile_fuel, step_lexer_fuel=settings.grammar_step_fuel,
                          max_grammar_size=settings.grammar_max_size, verbose_errors=settings.verbose)


def is_limit_error(message: str) -> bool:
    """Whether an llguidance error says a resource limit was hit (rather than a grammar or token error)."""
    return bool(re.search(r"too (big|many|complex)|limit|fuel", message, re.IGNORECASE))


