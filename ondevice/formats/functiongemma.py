"""FunctionGemma's layout (google/functiongemma-270m-it's template): the tools declared in a
``developer`` turn, each call a block ``<start_function_call>call:NAME{key:value,...}<end_function_call>``
with nothing between blocks, results as ``<start_function_response>response:NAME{...}`` (the template
needs the tool's name on each result: `template_messages` adds it from the call it answers).

Values are not JSON: a string stands between two ``<escape>`` markers, raw (it cannot hold the
marker); keys are bare and written in the template's dictsort order; booleans are ``true``/``false``,
null is ``None`` (as the template prints it), numbers as JSON writes them, lists ``[a,b]`` and objects
``{k:v}`` with "," and no blank. The grammar compiles each argument's schema to these literals
(literals.py); a string's ``pattern`` and length are enforced, its ``format`` is not written (an
optional argument with one is left out, a required one refused by name).
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Sequence

from llguidance import LLMatcher

from ..grammar.calls import CallOptions, answer_rules, calls_rule
from ..schema.tools import Tool
from ..settings import FUNCTIONGEMMA
from .base import ConsecutiveCallsFormat, Message, takes_tools
from .blocks import json_text, message_call
from .literals import LiteralCompiler, Spelling, Unsatisfiable, dictsort
from .stream import WholeCallReader

_OPEN, _CLOSE = "<start_function_call>", "<end_function_call>"
_ESC = "<escape>"
_CALL = "call:"
_SEP = ","
_KEY = re.compile(r"[^\s:,{}\[\]<>]+")  # a key the reader can find its end of (bare, before ":")
_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_NO_ESCAPE = r"~/(?s:.*)<escape>(?s:.*)/"  # a string's text never holds the marker


def gemma_literal(value: Any) -> str:
    """`value` (JSON data) as FunctionGemma's template writes it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if value is None:
        return "None"
    if isinstance(value, str):
        return _ESC + value + _ESC
    if isinstance(value, list):
        return "[" + _SEP.join(gemma_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + _SEP.join(f"{k}:{gemma_literal(value[k])}" for k in dictsort([str(k) for k in value])) + "}"
    return json_text(value)


def gemma_call(name: str, arguments: Any) -> str:
    """One call's block as the template writes it."""
    return f"{_OPEN}{_CALL}{name}{gemma_literal(arguments if isinstance(arguments, dict) else {})}{_CLOSE}"


class GemmaSpelling(Spelling):
    """FunctionGemma's values; `special`: the vocabulary has the marker as a control token (as
    FunctionGemma's has), which a string then ends with (else the marker's text)."""

    def __init__(self, special: bool = False) -> None:
        self.special = special

    format_name, what = "functiongemma", "FunctionGemma values"
    sep = _SEP
    true, false, null = "true", "false", "None"
    sort_members = True
    bad_names = "not bare keys (they hold a blank or one of : , { } [ ] < >)"

    def literal(self, value: Any) -> str:
        return gemma_literal(value)

    def literal_lark(self, value: Any) -> str:
        if not self.special:
            return json.dumps(self.literal(value))
        parts: list[str] = []
        for i, piece in enumerate(self.literal(value).split(_ESC)):
            parts += (["escape"] if i else []) + ([json.dumps(piece)] if piece else [])
        return "(" + " ".join(parts) + ")"

    def argument_lead(self, key: str) -> str:
        return key + ":"

    member_lead = argument_lead

    def argument_name_ok(self, key: str) -> bool:
        return bool(_KEY.fullmatch(key))

    member_name_ok = argument_name_ok

    def string(self, schema: dict[str, Any], compiler: LiteralCompiler) -> str:
        if "format" in schema:
            raise Unsatisfiable(f"a string of format {schema['format']!r}")
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        if high is not None and int(high) < low:
            raise Unsatisfiable("maxLength below minLength")
        parts = [f"/(?s:.{{{low},{'' if high is None else int(high)}}})/", _NO_ESCAPE]
        if "pattern" in schema:
            parts.append(f"/{_search(schema['pattern'])}/")
        text = compiler.terminal(" & ".join(parts))
        problem = LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(f"start: {text}\n" + compiler.lines[-1]))
        if problem:
            compiler.lines.pop()
            raise Unsatisfiable(f"the pattern {schema.get('pattern')!r} ({problem.strip().splitlines()[0][:80]})")
        if self.special:
            return f"escape {text} escape"  # the control token ends the text: no lexeme runs past it
        # The marker as text: the string is one lexeme up to the first marker (lazy: a greedy lexeme
        # would read on into "<escape" and find no way back).
        return "escape " + compiler.rule(f"{text} {json.dumps(_ESC)}", "[lazy]")


def _search(pattern: Any) -> str:
    """A JSON Schema pattern (found anywhere in the string unless anchored) as a whole-string regex."""
    body = str(pattern)
    start, end = body.startswith("^"), body.endswith("$") and not body.endswith("\\$")
    core = re.sub(r"(?<!\\)/", r"\/", body[1 if start else 0:len(body) - 1 if end else len(body)])
    return ("" if start else "(?s:.*)") + f"(?:{core})" + ("" if end else "(?s:.*)")


class FunctionGemmaFormat(ConsecutiveCallsFormat):
    name = FUNCTIONGEMMA
    summary = "the model's own chat template, each call <start_function_call>call:name{k:<escape>v<escape>} (FunctionGemma)"
    tags = (_OPEN, _CLOSE)
    stream_head = _OPEN
    call_end = b">"
    block_per_call = True
    reader_class = WholeCallReader

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and _OPEN in template:
            return "its chat template writes calls as <start_function_call>call:name{...} (FunctionGemma)"
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        calls = "" if not tools or options.max_calls == 0 else calls_rule(options.min_calls, options.max_calls,
                                                                           "block", "")
        lines = answer_rules(options, calls, optional=True)
        if calls:
            lines.append("block: tag_open call tag_close")
            lines += m.tag_rules()
            # where the tags are the vocabulary's control tokens, so is the marker (FunctionGemma's own)
            lines.append(f"escape: {_ESC if m.special else json.dumps(_ESC)}")
            lines.append("call: " + " | ".join(f"call_{i}" for i in range(len(tools))))
            spelling = GemmaSpelling(m.special)
            for i, tool in enumerate(tools):
                compiler = LiteralCompiler(tool, f"c{i}", spelling)
                call = (json.dumps(f"{_CALL}{tool.name}{{"), compiler.arguments(), '"}"')
                lines.append(f"call_{i}: " + " ".join(part for part in call if part))
                lines += compiler.lines
        return "\n".join(lines) + "\n"

    def call_name_at(self, text: str, at: int) -> Optional[str]:
        """The name of the call whose block starts at `at` once ``call:NAME{`` stands (stream reader)."""
        head = _HEAD.match(text, at)
        return head.group(1) if head else None

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        calls: list[tuple[Any, int]] = []
        i = 0
        while (head := _HEAD.match(text, i)) is not None:
            try:
                arguments, end = _read_object(text, head.end() - 1)
            except _NotAValue:
                break
            if not text.startswith(_CLOSE, end):
                break
            i = end + len(_CLOSE)
            calls.append(({"name": head.group(1), "arguments": arguments}, i))
        return calls


    def template_messages(self, messages: list[Message]) -> list[Message]:
        # The template writes a result as response:NAME{...} and raises without the name: each tool
        # turn gets the name of the call it answers (by its tool_call_id, else in the calls' order).
        out: list[Message] = []
        calls: list[tuple[Any, str]] = []  # (id, name) of the last assistant turn's calls
        answered = 0
        for message in messages:
            role = message.get("role")
            if role == "assistant":
                calls = [(c.get("id") if isinstance(c, dict) else None, str(message_call(c)[0]))
                         for c in message.get("tool_calls") or []]
                answered = 0
            elif role == "tool" and "name" not in message and calls:
                by_id = [name for ident, name in calls if ident and ident == message.get("tool_call_id")]
                name = by_id[0] if by_id else calls[min(answered, len(calls) - 1)][1]
                message = dict(message, name=name)
                answered += 1
            out.append(message)
        return out


_HEAD = re.compile(re.escape(_OPEN + _CALL) + r"([^{<]+)\{")


class _NotAValue(Exception):
    pass


def _read_value(text: str, i: int) -> tuple[Any, int]:
    """The value written at `i` and the index past it (`_NotAValue` when none is complete there)."""
    if text.startswith(_ESC, i):
        end = text.find(_ESC, i + len(_ESC))
        if end < 0:
            raise _NotAValue
        return text[i + len(_ESC):end], end + len(_ESC)
    if text.startswith("{", i):
        return _read_object(text, i)
    if text.startswith("[", i):
        items: list[Any] = []
        i += 1
        if text.startswith("]", i):
            return items, i + 1
        while True:
            value, i = _read_value(text, i)
            items.append(value)
            if text.startswith("]", i):
                return items, i + 1
            if not text.startswith(_SEP, i):
                raise _NotAValue
            i += len(_SEP)
    for word, value in (("true", True), ("false", False), ("None", None), ("null", None)):
        if text.startswith(word, i):
            return value, i + len(word)
    number = _NUMBER.match(text, i)
    if number is None or number.end() == len(text):  # a number may still grow
        raise _NotAValue
    return json.loads(number.group(0)), number.end()


def _read_object(text: str, i: int) -> tuple[dict[str, Any], int]:
    """The ``{key:value,...}`` at `i` (bare keys) and the index past it."""
    members: dict[str, Any] = {}
    i += 1
    if text.startswith("}", i):
        return members, i + 1
    while True:
        colon = text.find(":", i)
        if colon < 0 or not _KEY.fullmatch(text[i:colon]):
            raise _NotAValue
        members[text[i:colon]], i = _read_value(text, colon + 1)
        if text.startswith("}", i):
            return members, i + 1
        if not text.startswith(_SEP, i):
            raise _NotAValue
        i += len(_SEP)
