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

from llguidance import LLMatcher

from ..errors import ToolSchemaError
from ..grammar.calls import JSON_LAYOUT, CallOptions, answer_rules, calls_rule
from ..schema.tools import Tool
from ..settings import PYTHONIC
from .base import Message, TemplateFormat, takes_tools
from .blocks import NOT_JSON, ToolCall, message_call
from .stream import ArgumentsDelta, CallStart, Event, ToolCallReader

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
    return json.dumps(value)


def python_call(name: str, arguments: Any) -> str:
    """One call as LFM2 writes it: ``name(key=value, ...)``."""
    items = arguments.items() if isinstance(arguments, dict) else ()
    return f"{name}(" + _SEP.join(f"{k}={python_literal(v)}" for k, v in items) + ")"


_ANNOTATIONS = {"description", "title", "default", "examples", "$comment", "$id", "$schema", "deprecated",
                "readOnly", "writeOnly", "definitions", "$defs"}


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


_STRING_ONLY = {"format", "pattern", "minLength", "maxLength", "contentEncoding", "contentMediaType"}
_NUMBER_ONLY = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
_OBJECT_ONLY = {"properties", "required", "additionalProperties", "patternProperties", "propertyNames",
                "minProperties", "maxProperties"}
_ARRAY_ONLY = {"items", "minItems", "maxItems", "uniqueItems", "contains", "prefixItems"}


def _members_constrained(schema: dict[str, Any], properties: dict[str, Any], required: set[str]) -> bool:
    """Whether an object's keywords beyond its properties constrain the members the grammar writes (only
    the declared ones: valid whatever the other keywords allow beyond them, unless these bound their
    count or constrain their names)."""
    patterns = schema.get("patternProperties") or {}
    return bool(any(re.search(pattern, name) for pattern in patterns for name in properties)
                or "propertyNames" in schema and properties
                or int(schema.get("minProperties", 0)) > len(required)
                or "maxProperties" in schema and int(schema["maxProperties"]) < len(properties))


class _Unsatisfiable(Exception):
    """No value satisfies this part of the schema (an optional member with it is left out)."""


class _Compiler:
    """Lark rules of one tool's call: its name, then its arguments as keyword arguments, each value a
    Python literal valid against its schema (see `value`)."""

    def __init__(self, tool: Tool, prefix: str):
        self.tool, self.prefix, self.lines, self.count = tool, prefix, [], 0
        root = tool.grammar_schema if isinstance(tool.grammar_schema, dict) else {}
        self.definitions = {key: root[key] for key in ("$defs", "definitions") if key in root}

    def rule(self, body: str) -> str:
        name = f"{self.prefix}_{self.count}"
        self.count += 1
        self.lines.append(f"{name}: {body}")
        return name

    def refuse(self, schema: Any, why: str) -> ToolSchemaError:
        return ToolSchemaError(f"tool {self.tool.name!r}: the pythonic format cannot write {why} as Python "
                               f"literals: {json.dumps(schema)[:120]}; simplify the schema, or use another tool "
                               "format (--tool-format)")

    def members(self, items: list[tuple[str, Any, bool]], depth: int = 0) -> str:
        """An ordered subset of `items` (their text before the value, schema, required), the required
        ones always there, separated by ``", "``: a Lark expression ("" for none). An optional member
        no value satisfies is left out."""
        kept = []
        for lead, schema, required in items:
            try:
                kept.append((f"{json.dumps(lead)} {self.value(schema, depth + 1)}", required))
            except _Unsatisfiable as exc:
                if required:
                    raise self.refuse(schema, f"a value of {lead.rstrip('=: ')!r} ({exc})") from None
        if not kept:
            return ""
        names = [f"{self.prefix}_{self.count}_{i}" for i in range(len(kept))]  # A_i: the members from i on
        self.count += 1
        for i, (member, required) in enumerate(kept):
            rest_required = any(r for _, r in kept[i + 1:])
            after = ""
            if i + 1 < len(kept):
                tail = f'"{_SEP}" {names[i + 1]}'
                after = tail if rest_required else f"({tail})?"
            alternatives = [f"{member} {after}".strip()] + ([names[i + 1]] if not required and i + 1 < len(kept) else [])
            self.lines.append(f"{names[i]}: " + " | ".join(alternatives))
        return names[0] if any(r for _, r in kept) else f"({names[0]})?"

    def resolve(self, schema: Any, depth: int = 0) -> Any:
        """A local ``$ref`` (``#/$defs/X``, ``#/definitions/X``) followed."""
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 16:
            parts = schema["$ref"].split("/")
            target = self.definitions.get(parts[1], {}).get(parts[2]) if len(parts) == 3 and parts[0] == "#" else None
            if target is None:
                raise self.refuse(schema, "a reference it cannot follow")
            schema = dict(target, **{k: v for k, v in schema.items() if k != "$ref"})
            depth += 1
        return schema

    def value(self, schema: Any, depth: int = 0) -> str:
        """A Python literal valid against `schema` (a Lark expression)."""
        if depth > 24:  # a recursive reference, or nesting no call needs
            raise self.refuse(schema, "a schema nested this deep (a recursive reference?)")
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or not set(schema) - _ANNOTATIONS:
            schema = {"type": "string"}  # anything is allowed: a string is as good as any value
        if "type" not in schema and set(schema) - _ANNOTATIONS <= _STRING_ONLY:
            schema = dict(schema, type="string")  # its keywords apply to strings only: a string satisfies them
        elif "type" not in schema and set(schema) - _ANNOTATIONS <= _NUMBER_ONLY:
            schema = dict(schema, type="number")
        if _json_is_python(schema):
            body = dict(schema, **self.definitions, **{"x-guidance": JSON_LAYOUT})
            problem = LLMatcher.validate_grammar(LLMatcher.grammar_from_json_schema(body))
            if problem:
                raise _Unsatisfiable(problem.strip().splitlines()[0][:160])
            return self.rule(f"%json {json.dumps(body)}")  # JSON writes it as Python does
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            if not values:
                raise _Unsatisfiable("an empty enum")
            return "(" + " | ".join(json.dumps(python_literal(v)) for v in values) + ")"
        kinds = schema.get("type")
        if isinstance(kinds, list):
            return self.alternatives([dict(schema, type=k) for k in kinds], depth)
        if "anyOf" in schema and isinstance(schema["anyOf"], list) and not set(schema) - _ANNOTATIONS - {"anyOf", "type"}:
            return self.alternatives([dict(b, type=kinds) if kinds and isinstance(b, dict) and "type" not in b else b
                                      for b in schema["anyOf"]], depth)
        if kinds is None and set(schema) & {"properties", "required", "additionalProperties", "patternProperties"}:
            kinds = "object"  # the keywords say what the type leaves unsaid
        elif kinds is None and "items" in schema:
            kinds = "array"
        if kinds == "boolean":
            return '("True" | "False")'
        if kinds == "null":
            return '"None"'
        rest = set(schema) - _ANNOTATIONS - {"type"}
        if kinds == "array" and rest - _OBJECT_ONLY <= {"items", "minItems", "maxItems"}:
            item = self.value(schema.get("items", {}), depth + 1)
            low, high = int(schema.get("minItems", 0)), schema.get("maxItems")
            high = None if high is None else int(high)
            if high is not None and high < low:
                raise _Unsatisfiable("maxItems below minItems")
            if high == 0:
                return '"[]"'
            next_item = f'("{_SEP}" {item})'
            repeat = f"{next_item}{{{low - 1}}}" if low > 1 else ""  # the rest of the required items
            extra = f"{next_item}*" if high is None else (f"{next_item}{{0,{high - max(low, 1)}}}"
                                                          if high > max(low, 1) else "")
            items = " ".join(p for p in (item, repeat, extra) if p)
            return self.rule(f'"[" {items} "]"' if low else f'"[" ({items})? "]"')
        if kinds == "object" and rest - _ARRAY_ONLY <= _OBJECT_ONLY:
            properties = schema.get("properties", {})
            required = set(schema.get("required", []))
            if required - set(properties):
                raise self.refuse(schema, f"required members without a schema ({sorted(required - set(properties))})")
            if _members_constrained(schema, properties, required):
                raise self.refuse(schema, "an object whose members other keywords constrain")
            items = [(json.dumps(k) + ": ", s, k in required) for k, s in properties.items()]
            return self.rule(" ".join(p for p in ('"{"', self.members(items, depth), '"}"') if p))
        raise self.refuse(schema, "the values of this schema (a boolean or null inside, with "
                          f"{sorted(rest) or 'no type'})")

    def alternatives(self, branches: list[Any], depth: int) -> str:
        found, last = [], None
        for branch in branches:
            try:
                found.append(self.value(branch, depth + 1))
            except _Unsatisfiable as exc:
                last = exc
        if not found:
            raise _Unsatisfiable(str(last) if last else "no alternative")
        return "(" + " | ".join(found) + ")"

    def call(self) -> str:
        params = self.tool.grammar_schema if isinstance(self.tool.grammar_schema, dict) else {}
        properties = params.get("properties", {})
        required = set(params.get("required", []))
        others = set(params) - _ANNOTATIONS - {"type"} - _OBJECT_ONLY
        if others or _members_constrained(params, properties, required):
            raise self.refuse(params, f"arguments whose members {sorted(others) or 'other keywords'} constrain")
        bad = sorted(k for k in properties if k in required and not _IDENTIFIER.fullmatch(k))
        if bad:
            raise ToolSchemaError(f"tool {self.tool.name!r}: the pythonic format writes arguments as keyword "
                                  f"arguments, and the required {bad} are not Python identifiers; rename them or "
                                  "use another tool format (--tool-format)")
        # an optional argument whose name Python cannot take is never written (leaving it out is valid)
        items = [(f"{k}=", s, k in required) for k, s in properties.items() if _IDENTIFIER.fullmatch(k)]
        try:
            members = self.members(items)
        except _Unsatisfiable as exc:
            raise ToolSchemaError(f"tool {self.tool.name!r}: no call satisfies its schema ({exc})") from None
        return " ".join(part for part in (json.dumps(self.tool.name + "("), members, '")"') if part)


class PythonicReader(ToolCallReader):
    """The stream reader of pythonic calls: a call starts once ``name(`` is written; its arguments are
    sent whole, as JSON, once the call is complete (they are Python, not JSON, as written)."""

    def __init__(self, fmt: "PythonicFormat") -> None:
        super().__init__(fmt)
        self.fmt = fmt
        self._done = 0  # complete calls already sent

    def feed(self, piece: str) -> list[Event]:
        self.text += piece
        events: list[Event] = []
        if not self.text.startswith(self.fmt.stream_head):
            return events
        complete = self.fmt.complete_calls(self.text)
        started = [value["name"] for value, _ in complete]
        # the call being written after the complete ones: its name once "name(" stands
        at = complete[-1][1] + len(_SEP) if complete else len(self.fmt.stream_head)
        if (not complete or self.text.startswith(_SEP, complete[-1][1])) and (head := _NAME_OPEN.match(self.text, at)):
            started.append(head.group(1))
        while self._index + 1 < len(started):
            self._index += 1
            events.append(CallStart(self._index, started[self._index]))
        while self._done < len(complete) and self._done <= self._index:
            events.append(ArgumentsDelta(self._done, json.dumps(complete[self._done][0]["arguments"])))
            self._done += 1
        return events


_NAME_OPEN = re.compile(r"([^\s()\[\],=\"]+)\(")


class PythonicFormat(TemplateFormat):
    name = PYTHONIC
    summary = "the model's own chat template, the calls as one Python list [f(a=1), ...] (LFM2)"
    tags = (_OPEN, _CLOSE)
    stream_head = _OPEN + "["
    call_end = b")"
    reader_class = PythonicReader

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
                compiler = _Compiler(tool, f"c{i}")
                lines.append(f"call_{i}: {compiler.call()}")
                lines += compiler.lines
        return "\n".join(lines) + "\n"

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
