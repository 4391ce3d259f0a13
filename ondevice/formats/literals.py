"""A call's arguments written as literals of a syntax other than JSON (Python's for LFM2, FunctionGemma's
``<escape>`` strings and bare keys), compiled from each argument's JSON Schema to Lark rules.

A `Spelling` says how the syntax writes each kind of value; `LiteralCompiler` turns one tool's
parameters into the rules of ``name(`` ... ``)``-style calls whose values are valid for the schema. Where
the syntax writes a part of a value as JSON does (numbers everywhere; for Python, strings and containers
of them too), that part is a ``%json`` fragment, so llguidance enforces every keyword it knows there.
What a syntax cannot write is refused by name (`ToolSchemaError`); an optional member no value
satisfies is left out.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable

from llguidance import LLMatcher

from ..errors import ToolSchemaError
from ..grammar.calls import JSON_LAYOUT
from ..schema.tools import Tool

ANNOTATIONS = {"description", "title", "default", "examples", "$comment", "$id", "$schema", "deprecated",
               "readOnly", "writeOnly", "definitions", "$defs"}
STRING_ONLY = {"format", "pattern", "minLength", "maxLength", "contentEncoding", "contentMediaType"}
NUMBER_ONLY = {"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"}
OBJECT_ONLY = {"properties", "required", "additionalProperties", "patternProperties", "propertyNames",
               "minProperties", "maxProperties"}
ARRAY_ONLY = {"items", "minItems", "maxItems", "uniqueItems", "contains", "prefixItems"}


class Unsatisfiable(Exception):
    """No value satisfies this part of the schema (an optional member with it is left out)."""


class Spelling:
    """How a syntax writes JSON values. Subclasses set the words and implement the hooks."""

    format_name = ""  # the tool format, for errors
    what = ""  # what the values are called, for errors ("Python literals")
    sep = ", "  # between list items, object members and arguments
    true, false, null = "true", "false", "null"
    sort_members = False  # members written in the template's dictsort order (by key, ignoring case)
    bad_names = "names it cannot write"  # what a name `argument_name_ok` refuses is, for errors

    def literal(self, value: Any) -> str:
        """`value` (JSON data) as this syntax writes it."""
        raise NotImplementedError

    def literal_lark(self, value: Any) -> str:
        """`value` as a Lark expression (its `literal` text, unless a marker in it is a control token)."""
        return json.dumps(self.literal(value))

    def argument_lead(self, key: str) -> str:
        """The text before a call argument's value (``key=``)."""
        raise NotImplementedError

    def member_lead(self, key: str) -> str:
        """The text before an object member's value (``"key": ``)."""
        raise NotImplementedError

    def argument_name_ok(self, key: str) -> bool:
        """Whether an argument named `key` can be written and read back."""
        return True

    def member_name_ok(self, key: str) -> bool:
        """Whether an object member named `key` can be written and read back."""
        return True

    def json_writes(self, schema: dict[str, Any]) -> bool:
        """Whether every value of `schema` is written as JSON writes it (then a %json fragment)."""
        return schema.get("type") in ("number", "integer") and not set(schema) & {"enum", "const"}

    def string(self, schema: dict[str, Any], compiler: "LiteralCompiler") -> str:
        """A string valid for `schema` (a Lark expression)."""
        raise Unsatisfiable(f"strings of {self.format_name}")


def members_constrained(schema: dict[str, Any], properties: dict[str, Any], required: set[str]) -> bool:
    """Whether an object's keywords beyond its properties constrain the members the grammar writes (only
    the declared ones: valid whatever the other keywords allow beyond them, unless these bound their
    count or constrain their names)."""
    patterns = schema.get("patternProperties") or {}
    return bool(any(re.search(pattern, name) for pattern in patterns for name in properties)
                or "propertyNames" in schema and properties
                or int(schema.get("minProperties", 0)) > len(required)
                or "maxProperties" in schema and int(schema["maxProperties"]) < len(properties))


def dictsort(keys: list[str]) -> list[str]:
    """Keys in Jinja's ``dictsort`` order (by key, case ignored), as templates write a mapping."""
    return sorted(keys, key=str.lower)


class LiteralCompiler:
    """Lark rules of one tool's call: its arguments, each value a literal of `spelling` valid against
    its schema (see `value`). `call(head, tail)` is the call's expression; `lines` its rules."""

    def __init__(self, tool: Tool, prefix: str, spelling: Spelling):
        self.tool, self.prefix, self.spelling, self.lines, self.count = tool, prefix, spelling, [], 0
        root = tool.grammar_schema if isinstance(tool.grammar_schema, dict) else {}
        self.definitions = {key: root[key] for key in ("$defs", "definitions") if key in root}

    def rule(self, body: str, attributes: str = "") -> str:
        """A new rule of `body` (`attributes`: llguidance's, e.g. ``[lazy]``); its name."""
        name = f"{self.prefix}_{self.count}"
        self.count += 1
        self.lines.append(f"{name}{attributes}: {body}")
        return name

    def terminal(self, body: str) -> str:
        """A lexeme (regex operators such as ``&`` and ``~`` apply to lexemes only)."""
        name = f"T{self.prefix.upper()}_{self.count}"
        self.count += 1
        self.lines.append(f"{name}: {body}")
        return name

    def refuse(self, schema: Any, why: str) -> ToolSchemaError:
        s = self.spelling
        return ToolSchemaError(f"tool {self.tool.name!r}: the {s.format_name} format cannot write {why} as "
                               f"{s.what}: {json.dumps(schema)[:120]}; simplify the schema, or use another tool "
                               "format (--tool-format)")

    def members(self, items: list[tuple[str, Any, bool]], depth: int = 0) -> str:
        """An ordered subset of `items` (their text before the value, schema, required), the required
        ones always there, separated by the spelling's separator: a Lark expression ("" for none). An
        optional member no value satisfies is left out."""
        kept = []
        for lead, schema, required in items:
            try:
                kept.append((f"{json.dumps(lead)} {self.value(schema, depth + 1)}", required))
            except Unsatisfiable as exc:
                if required:
                    raise self.refuse(schema, f"a value of {lead.rstrip('=: ')!r} ({exc})") from None
        if not kept:
            return ""
        names = [f"{self.prefix}_{self.count}_{i}" for i in range(len(kept))]  # A_i: the members from i on
        self.count += 1
        sep = json.dumps(self.spelling.sep)
        for i, (member, required) in enumerate(kept):
            rest_required = any(r for _, r in kept[i + 1:])
            after = ""
            if i + 1 < len(kept):
                tail = f"{sep} {names[i + 1]}"
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

    def ordered(self, properties: dict[str, Any], name_ok: Callable[[str], bool], required: set[str],
                lead: Callable[[str], str]) -> list[tuple[str, Any, bool]]:
        """The members the grammar may write, in the spelling's order; a required one whose name the
        syntax cannot write is refused, an optional one is never written (leaving it out is valid)."""
        bad = sorted(k for k in properties if k in required and not name_ok(k))
        if bad:
            raise ToolSchemaError(f"tool {self.tool.name!r}: the {self.spelling.format_name} format cannot write the "
                                  f"required {bad}: they are {self.spelling.bad_names}; rename them or use another "
                                  "tool format (--tool-format)")
        keys = [k for k in properties if name_ok(k)]
        if self.spelling.sort_members:
            keys = dictsort(keys)
        return [(lead(k), properties[k], k in required) for k in keys]

    def value(self, schema: Any, depth: int = 0) -> str:
        """A literal valid against `schema` (a Lark expression)."""
        s = self.spelling
        if depth > 24:  # a recursive reference, or nesting no call needs
            raise self.refuse(schema, "a schema nested this deep (a recursive reference?)")
        schema = self.resolve(schema)
        if not isinstance(schema, dict) or not set(schema) - ANNOTATIONS:
            schema = {"type": "string"}  # anything is allowed: a string is as good as any value
        if "type" not in schema and set(schema) - ANNOTATIONS <= STRING_ONLY:
            schema = dict(schema, type="string")  # its keywords apply to strings only: a string satisfies them
        elif "type" not in schema and set(schema) - ANNOTATIONS <= NUMBER_ONLY:
            schema = dict(schema, type="number")
        if s.json_writes(schema):
            body = dict(schema, **self.definitions, **{"x-guidance": JSON_LAYOUT})
            problem = LLMatcher.validate_grammar(LLMatcher.grammar_from_json_schema(body))
            if problem:
                raise Unsatisfiable(problem.strip().splitlines()[0][:160])
            return self.rule(f"%json {json.dumps(body)}")  # JSON writes it as this syntax does
        if "enum" in schema or "const" in schema:
            values = schema["enum"] if "enum" in schema else [schema["const"]]
            if not values:
                raise Unsatisfiable("an empty enum")
            return "(" + " | ".join(s.literal_lark(v) for v in values) + ")"
        kinds = schema.get("type")
        if isinstance(kinds, list):
            return self.alternatives([dict(schema, type=k) for k in kinds], depth)
        if "anyOf" in schema and isinstance(schema["anyOf"], list) and not set(schema) - ANNOTATIONS - {"anyOf", "type"}:
            return self.alternatives([dict(b, type=kinds) if kinds and isinstance(b, dict) and "type" not in b else b
                                      for b in schema["anyOf"]], depth)
        if kinds is None and set(schema) & {"properties", "required", "additionalProperties", "patternProperties"}:
            kinds = "object"  # the keywords say what the type leaves unsaid
        elif kinds is None and "items" in schema:
            kinds = "array"
        rest = set(schema) - ANNOTATIONS - {"type"}
        if kinds == "string" and rest <= STRING_ONLY | OBJECT_ONLY | ARRAY_ONLY | NUMBER_ONLY:
            return s.string(schema, self)
        if kinds == "boolean":
            return f"({json.dumps(s.true)} | {json.dumps(s.false)})"
        if kinds == "null":
            return json.dumps(s.null)
        if kinds == "array" and rest - OBJECT_ONLY <= {"items", "minItems", "maxItems"}:
            item = self.value(schema.get("items", {}), depth + 1)
            low, high = int(schema.get("minItems", 0)), schema.get("maxItems")
            high = None if high is None else int(high)
            if high is not None and high < low:
                raise Unsatisfiable("maxItems below minItems")
            if high == 0:
                return '"[]"'
            next_item = f"({json.dumps(s.sep)} {item})"
            repeat = f"{next_item}{{{low - 1}}}" if low > 1 else ""  # the rest of the required items
            extra = f"{next_item}*" if high is None else (f"{next_item}{{0,{high - max(low, 1)}}}"
                                                          if high > max(low, 1) else "")
            items = " ".join(p for p in (item, repeat, extra) if p)
            return self.rule(f'"[" {items} "]"' if low else f'"[" ({items})? "]"')
        if kinds == "object" and rest - ARRAY_ONLY <= OBJECT_ONLY:
            properties = schema.get("properties", {})
            required = set(schema.get("required", []))
            if required - set(properties):
                raise self.refuse(schema, f"required members without a schema ({sorted(required - set(properties))})")
            if members_constrained(schema, properties, required):
                raise self.refuse(schema, "an object whose members other keywords constrain")
            items = self.ordered(properties, s.member_name_ok, required, s.member_lead)
            return self.rule(" ".join(p for p in ('"{"', self.members(items, depth), '"}"') if p))
        raise self.refuse(schema, "the values of this schema (a boolean or null inside, with "
                          f"{sorted(rest) or 'no type'})")

    def alternatives(self, branches: list[Any], depth: int) -> str:
        found, last = [], None
        for branch in branches:
            try:
                found.append(self.value(branch, depth + 1))
            except Unsatisfiable as exc:
                last = exc
        if not found:
            raise Unsatisfiable(str(last) if last else "no alternative")
        return "(" + " | ".join(found) + ")"

    def arguments(self) -> str:
        """The call's arguments: the members of its parameters' object, each led by the spelling's
        `argument_lead` (a Lark expression, "" for none)."""
        params = self.tool.grammar_schema if isinstance(self.tool.grammar_schema, dict) else {}
        properties = params.get("properties", {})
        required = set(params.get("required", []))
        others = set(params) - ANNOTATIONS - {"type"} - OBJECT_ONLY
        if others or members_constrained(params, properties, required):
            raise self.refuse(params, f"arguments whose members {sorted(others) or 'other keywords'} constrain")
        items = self.ordered(properties, self.spelling.argument_name_ok, required, self.spelling.argument_lead)
        try:
            return self.members(items)
        except Unsatisfiable as exc:
            raise ToolSchemaError(f"tool {self.tool.name!r}: no call satisfies its schema ({exc})") from None
