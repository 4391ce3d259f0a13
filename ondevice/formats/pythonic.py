"""LFM2's layout (Liquid AI's LFM2 models): the tools as JSON in the system turn (``List of tools:
<|tool_list_start|>[...]<|tool_list_end|>``), an answer's calls one Python list between
``<|tool_call_start|>`` and ``<|tool_call_end|>``, each a call with keyword arguments whose values are
Python literals: ``[get_weather(location="Paris", unit="celsius"), stop(now=True)]``.

The template renders no calls (its assistant turn is its content): a call in the history is written
back as the model writes it (`template_messages`). The grammar writes each value as a Python literal
valid against the argument's schema (strings and numbers as JSON writes them, which Python reads the
same, ``True``/``False``/``None``, lists and dicts); parsing reads it with `ast.literal_eval`, never
`eval`. A tool whose argument names are not Python identifiers cannot be called this way (refused).
"""

from __future__ import annotations

import ast
import json
import re
from typing import Any, Optional, Sequence

from ..grammar.calls import CallOptions, answer_rules, calls_rule
from ..schema.tools import Tool
from ..settings import PYTHONIC
from .base import Message, TemplateFormat, takes_tools
from .blocks import NOT_JSON, ToolCall, json_text, message_call
from .literals import LiteralCompiler, Spelling
from .stream import WholeCallReader

_OPEN, _CLOSE = "<|tool_call_start|>", "<|tool_call_end|>"
_LIST = "<|tool_list_start|>"  # where LFM2's template lists the tools
_SEP = ", "
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def python_literal(value: Any) -> str:
    """`value` (JSON data) as the grammar writes it in Python: strings and numbers as JSON, True,
    False, None, lists and dicts with ``", "`` and ``": "``."""
    if value is True:
        return "True"
    if value is False:
        return "False"
    if value is None:
        return "None"
    if isinstance(value, list):
        return "[" + _SEP.join(python_literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + _SEP.join(json.dumps(str(k)) + ": " + python_literal(v) for k, v in value.items()) + "}"
    return json_text(value)  # 1e999 for infinity: Python reads it back


def python_call(name: str, arguments: Any) -> str:
    """One call as LFM2 writes it: ``name(key=value, ...)``."""
    items = arguments.items() if isinstance(arguments, dict) else ()
    return f"{name}(" + _SEP.join(f"{k}={python_literal(v)}" for k, v in items) + ")"


class PythonSpelling(Spelling):
    """Python literals: strings and numbers as JSON writes them (Python reads them the same), True,
    False, None, lists and dicts with ``", "`` and ``": "``, keyword arguments ``key=value``."""

    format_name, what = PYTHONIC, "Python literals"
    sep = _SEP
    true, false, null = "True", "False", "None"
    bad_names = "not Python identifiers"

    def literal(self, value: Any) -> str:
        return python_literal(value)

    def argument_lead(self, key: str) -> str:
        return f"{key}="

    def member_lead(self, key: str) -> str:
        return json.dumps(key) + ": "

    def argument_name_ok(self, key: str) -> bool:
        return bool(_IDENTIFIER.fullmatch(key))

    def json_writes(self, schema: dict[str, Any]) -> bool:
        return _json_is_python(schema)


def _json_is_python(schema: Any) -> bool:
    """Whether every value `schema` admits is written the same in JSON and in Python: strings, numbers,
    and lists and objects of them (no boolean or null anywhere, no reference, no type left open)."""
    if not isinstance(schema, dict) or "$ref" in schema:
        return False
    if "enum" in schema or "const" in schema:
        values = schema["enum"] if "enum" in schema else [schema["const"]]
        return isinstance(values, list) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool)
                                                for v in values)
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema and not (isinstance(schema[key], list) and all(_json_is_python(b) for b in schema[key])):
            return False
    kind = schema.get("type")
    if kind in ("string", "number", "integer"):
        return True
    if kind == "array":
        return _json_is_python(schema.get("items")) and not schema.get("prefixItems")
    if kind == "object":
        extra = schema.get("additionalProperties", False)
        return (extra is False or _json_is_python(extra)) and not schema.get("patternProperties") \
            and all(_json_is_python(s) for s in schema.get("properties", {}).values())
    return False


_SPELLING = PythonSpelling()


_NAME_OPEN = re.compile(r"([^\s()\[\],=\"]+)\(")


class PythonicFormat(TemplateFormat):
    name = PYTHONIC
    summary = "the model's own chat template, the calls as one Python list [f(a=1), ...] (LFM2)"
    tags = (_OPEN, _CLOSE)
    stream_head = _OPEN + "["
    call_end = b")"
    reader_class = WholeCallReader

    def recognize(self, template: str) -> Optional[str]:
        if takes_tools(template) and _LIST in template:
            return f"its chat template lists the tools in {_LIST} and renders no calls (LFM2: pythonic calls)"
        return None

    def lark(self, tools: Sequence[Tool], options: CallOptions) -> str:
        m = options.markers or self.plain_markers()
        calls = "calls" if tools and options.max_calls != 0 else ""
        lines = answer_rules(options, calls, optional=True)
        if calls:
            items = calls_rule(options.min_calls, options.max_calls)
            lines += [f'calls: tag_open "[" {items} "]" tag_close', f"SEP: {json.dumps(_SEP)}"]
            lines += m.tag_rules()
            lines.append("call: " + " | ".join(f"call_{i}" for i in range(len(tools))))
            for i, tool in enumerate(tools):
                compiler = LiteralCompiler(tool, f"c{i}", _SPELLING)
                call = (json.dumps(tool.name + "("), compiler.arguments(), '")"')
                lines.append(f"call_{i}: " + " ".join(part for part in call if part))
                lines += compiler.lines
        return "\n".join(lines) + "\n"

    def call_name_at(self, text: str, at: int) -> Optional[str]:
        """The name of the call written at `at` (the end of the complete calls, 0 for none) once
        ``name(`` stands, else None (the stream reader's view)."""
        if at == 0:
            if not text.startswith(self.stream_head):
                return None
            at = len(self.stream_head)
        elif text.startswith(_SEP, at):
            at += len(_SEP)
        else:
            return None
        head = _NAME_OPEN.match(text, at)
        return head.group(1) if head else None

    def complete_calls(self, text: str) -> list[tuple[Any, int]]:
        if not text.startswith(self.stream_head):
            return []
        calls: list[tuple[Any, int]] = []
        i = len(self.stream_head)
        while True:
            end = _call_end(text, i)
            if end is None:
                break
            value = _read_call(text[i:end])
            if value is None:
                break
            calls.append((value, end))
            if not text.startswith(_SEP, end):
                break
            i = end + len(_SEP)
        return calls

    def close_text(self, text: str, keep: Optional[int] = None) -> str:
        calls = self.complete_calls(text)[:keep]
        return text[:calls[-1][1]] + "]" + _CLOSE if calls else ""

    def parse(self, text: str) -> Optional[list[ToolCall]]:
        body = text.strip()
        if not body.startswith(_OPEN):
            return []  # a plain reply
        if not body.endswith("]" + _CLOSE):
            return None
        found = self.complete_calls(body)
        if not found or found[-1][1] != len(body) - len("]" + _CLOSE):
            return None
        return [ToolCall(value["name"], value["arguments"]) for value, _ in found]

    def template_messages(self, messages: list[Message]) -> list[Message]:
        # The template shows an assistant turn's content only: its calls go in, as the model writes them.
        out = []
        for message in messages:
            calls = message.get("tool_calls") if message.get("role") == "assistant" else None
            if isinstance(calls, list) and calls:
                written = _OPEN + "[" + _SEP.join(python_call(*_name_and_arguments(c)) for c in calls) + "]" + _CLOSE
                message = {k: v for k, v in message.items() if k != "tool_calls"}
                message["content"] = (message.get("content") or "") + written
            out.append(message)
        return out


def _name_and_arguments(call: Any) -> tuple[str, Any]:
    name, arguments = message_call(call)
    return str(name), {} if arguments is NOT_JSON else arguments


def _call_end(text: str, start: int) -> Optional[int]:
    """The index just past the call that starts at `start` (its closing parenthesis), None while it is
    not complete; strings (JSON's double-quoted ones) may hold any bracket."""
    depth, in_string, escape = 0, False, False
    for i in range(start, len(text)):
        c = text[i]
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
            if depth == 0:
                return i + 1 if c == ")" else None
            if depth < 0:
                return None
    return None


def _read_call(source: str) -> Optional[dict[str, Any]]:
    """One call's text as ``{"name", "arguments"}`` (values read with `ast.literal_eval`), None when it
    is not a call with keyword arguments of literals. The name is read as text (a tool's name may hold
    dots or dashes, which Python would not take for a name)."""
    head = _NAME_OPEN.match(source)
    if head is None:
        return None
    try:
        node = ast.parse("f" + source[head.end() - 1:], mode="eval").body
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    if not isinstance(node, ast.Call) or node.args:
        return None
    arguments = {}
    for keyword in node.keywords:
        if keyword.arg is None:
            return None
        try:
            arguments[keyword.arg] = ast.literal_eval(keyword.value)
        except (ValueError, TypeError, SyntaxError, RecursionError):
            return None
    return {"name": head.group(1), "arguments": arguments}
