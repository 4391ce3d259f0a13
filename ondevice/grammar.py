"""The tool-call grammar: ``<tool_call>[`` + calls + ``]</tool_call>``, as an llguidance grammar.

Each call is ``{"name": <a given tool's name>, "arguments": <an object valid for that tool>}`` in the
compact ``json.dumps`` layout the fine-tune was trained on (", " and ": " separators). Whitespace is
bounded: one optional newline after ``[`` and before ``]``, and a space or a newline after each ``,``
between calls; none inside a call.

The tags are written the way the model itself emits them (`Markers`): as text for a tokenizer that
spells ``<tool_call>`` with ordinary pieces, or as the special token for one that has it as a single
token (Qwen2.5's 151657/151658). With ``no_call="text"`` the grammar also admits, instead of the
tool-call block, a plain sentence (the model's own way of saying no tool fits) that cannot start or
contain a tag, of bounded length.

Why llguidance rather than llama.cpp's GBNF: measured here on the 128k Llama 3 vocabulary, a GBNF mask
costs about 15 ms per token against about 0.1 ms, and llguidance reports the tokens the grammar forces
(so they are appended without sampling) and compiles JSON Schema itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Callable, Optional, Sequence

from llguidance import LLMatcher

from .errors import ModelFileError, SettingsError, ToolSchemaError
from .parse import TOOL_CALL_CLOSE as TAG_CLOSE
from .parse import TOOL_CALL_OPEN as TAG_OPEN
from .schema_refs import check_refs
from .tools import Tool

# The JSON layout inside a call: Python's json.dumps defaults, no free whitespace.
JSON_LAYOUT = {"whitespace_flexible": False, "item_separator": ", ", "key_separator": ": "}

_LISTING = re.compile(r"^\s*\d+ \| ")  # llguidance's grammar listing: "   5 | call_0: ..."
_POSITION = re.compile(r"^at \d+\(\d+\): ")

NO_CALL_MODES = ("list", "text", "threshold")


@dataclass(frozen=True)
class Markers:
    """The tags as the model emits them: Lark expressions, and the token ids of each tag.

    ``special`` tags are single special tokens (written ``<[id]>`` in the grammar, so llguidance
    matches the token itself); plain tags are text (a Lark string literal). `for_tokenizer` decides.
    """

    open_lark: str = json.dumps(TAG_OPEN)
    close_lark: str = json.dumps(TAG_CLOSE)
    special: bool = False
    open_ids: tuple[int, ...] = ()
    close_ids: tuple[int, ...] = ()

    @classmethod
    def for_tokenizer(cls, tokenize: Callable[[str], list[int]], is_special: Callable[[int], bool]) -> "Markers":
        """The markers for a tokenizer: `tokenize` parses special tokens; `is_special` is llguidance's view."""
        open_ids, close_ids = tokenize(TAG_OPEN), tokenize(TAG_CLOSE)
        special = [len(ids) == 1 and is_special(ids[0]) for ids in (open_ids, close_ids)]
        if special[0] != special[1]:
            raise ModelFileError(
                f"the tokenizer has only one of the tags as a special token: {TAG_OPEN} -> {open_ids}, "
                f"{TAG_CLOSE} -> {close_ids}; expected both or neither")
        if not special[0]:
            return cls(open_ids=tuple(open_ids), close_ids=tuple(close_ids))
        return cls(f"<[{open_ids[0]}]>", f"<[{close_ids[0]}]>", True, tuple(open_ids), tuple(close_ids))


@dataclass(frozen=True)
class GrammarOptions:
    """What the grammar admits besides the calls.

    no_call: "list" (an answer without a call is ``<tool_call>[]</tool_call>``), "text" (it may
    also be a plain sentence), "threshold" (the grammar of "text"; the decoder picks the branch by
    the probability of "no call", see decode.py). message_max_chars bounds that sentence.
    """

    no_call: str = "list"
    message_max_chars: int = 600
    markers: Markers = field(default_factory=Markers)

    def __post_init__(self) -> None:
        if self.no_call not in NO_CALL_MODES:
            raise SettingsError(f"setting no_call: expected one of {list(NO_CALL_MODES)}, got {self.no_call!r}")
        if self.message_max_chars < 1:
            raise SettingsError(f"setting message_max_chars: expected an integer >= 1, got {self.message_max_chars!r}")

    @property
    def allows_text(self) -> bool:
        return self.no_call in ("text", "threshold")


def _message_rule(max_chars: int) -> str:
    # No tag can start or hide in the sentence: no "<" at all, and no blank first character.
    return f"message: /[^<\\s][^<]{{0,{max_chars - 1}}}/"


def message_lark(max_chars: int) -> str:
    """The Lark source of a grammar admitting only the sentence (its first mask tells the tokens
    that can start a sentence from those that start the tool-call block)."""
    return "start: message\n" + _message_rule(max_chars) + "\n"


def tool_call_lark(tools: Sequence[Tool], options: Optional[GrammarOptions] = None) -> str:
    """The Lark source of the grammar for these tools (no tools: only ``<tool_call>[]</tool_call>``)."""
    options = options or GrammarOptions()
    m = options.markers
    lines = []
    if options.allows_text:
        lines += ["start: calls | message", _message_rule(options.message_max_chars)]
    else:
        lines.append("start: calls")
    if not tools:
        lines.append(f'calls: {m.open_lark} "[]" {m.close_lark}')
        return "\n".join(lines) + "\n"
    lines += [
        f'calls: {m.open_lark} "[" (NL? call (SEP call)* NL?)? "]" {m.close_lark}',
        'NL: "\\n"',
        "SEP: /,[ \\n]/",
        "call: " + " | ".join(f"call_{i}" for i in range(len(tools))),
    ]
    for i, tool in enumerate(tools):
        schema = dict(tool.call_schema(), **{"x-guidance": JSON_LAYOUT})
        lines.append(f"call_{i}: %json {json.dumps(schema)}")
    return "\n".join(lines) + "\n"


def compile_grammar(tools: Sequence[Tool], options: Optional[GrammarOptions] = None) -> str:
    """The serialized llguidance grammar; a schema that points nowhere, cannot be satisfied or that
    llguidance refuses names the tool (llguidance's grammar listing goes to the error's details)."""
    for tool in tools:
        check_refs(tool.name, tool.parameters)
    grammar = LLMatcher.grammar_from_lark(tool_call_lark(tools, options))
    is_error, messages = LLMatcher.validate_grammar_with_warnings(grammar)
    if is_error:
        for tool in tools:  # find which tool's schema was refused, to say so
            alone = LLMatcher.grammar_from_lark(tool_call_lark([tool], options))
            bad, why = LLMatcher.validate_grammar_with_warnings(alone)
            if bad:
                raise ToolSchemaError(f"tool {tool.name!r}: the grammar compiler refused its parameters: "
                                      f"{_first_lines(why)}", details="\n".join(why))
        raise ToolSchemaError(f"the tool-call grammar does not compile: {_first_lines(messages)}",
                              details="\n".join(messages))
    return grammar


def _first_lines(messages: Sequence[str]) -> str:
    """llguidance's reasons without the listing of the grammar that follows them."""
    reasons = []
    for message in messages:
        for line in message.splitlines():
            if _LISTING.match(line):
                break
            if line.strip() and line.strip() != "^":
                reasons.append(_POSITION.sub("", line.strip()))
    return "; ".join(reasons)
