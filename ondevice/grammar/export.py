"""The tool-call grammar as GBNF, for llama.cpp's own grammar sampler (llama-server's ``grammar`` field).

The same language as `formats.grammar.tool_call_lark` (the llguidance grammar ondevice decodes with): the
card format's list frame (its `list_frame`, passed in), the call-count bounds and allowed tools of `CallOptions`,
and each call in the compact ``json.dumps`` layout with its arguments following the tool's
normalized JSON Schema. GBNF has no regular expressions over JSON strings nor numeric ranges, so a
schema using ``pattern``, ``minimum``, ``maximum``, ``exclusiveMinimum``, ``exclusiveMaximum`` or
``multipleOf`` is refused here, naming the tool and keyword (the Lark export enforces them).
"""

from __future__ import annotations

import json
import re
from typing import Any, Optional, Sequence

from ..errors import ToolChoiceError, ToolSchemaError
from .calls import DEFAULT_OPTIONS, CallOptions
from ..schema.tools import Tool

NOT_IN_GBNF = ("pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")

_BASE_RULES = {
    "ws-nl": '"\\n"',
    "sep": '"," [ \\n]',
    "char": '[^"\\\\\\x7F\\x00-\\x1F] | "\\\\" (["\\\\/bfnrt] | "u" [0-9a-fA-F]{4})',
    "string": '"\\"" char* "\\""',
    "integer": '"-"? ([0-9] | [1-9] [0-9]{1,15})',
    "number": '"-"? ([0-9] | [1-9] [0-9]{1,15}) ("." [0-9]{1,16})? ([eE] [-+]? [0-9]{1,4})?',
    "boolean": '"true" | "false"',
    "null": '"null"',
    "value": "object | array | string | number | boolean | null",
    "object": '"{" (string ": " value (", " string ": " value)*)? "}"',
    "array": '"[" (value (", " value)*)? "]"',
}


def gbnf_literal(text: str) -> str:
    """A GBNF string literal matching exactly `text`."""
    out = []
    for c in text:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\x{ord(c):02X}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def _repeat(item: str, low: int, high: Optional[int], sep: str = '", "') -> str:
    """low..high items separated by `sep` (high None: unbounded); "" when high is 0."""
    if high == 0:
        return ""
    rest_low = max(low - 1, 0)
    if high is None:
        body = f"{item} ({sep} {item}){{{rest_low},}}"
    elif high == 1:
        body = item
    else:
        body = f"{item} ({sep} {item}){{{rest_low},{high - 1}}}"
    return body if low >= 1 else f"({body})?"


class _Converter:
    """One tool's parameters to GBNF rules, named after the tool's index."""

    def __init__(self, tool: Tool, index: int, rules: dict[str, str]):
        self.tool = tool
        self.prefix = f"t{index}"
        self.rules = rules
        self.root = tool.parameters

    def fail(self, path: str, message: str) -> ToolSchemaError:
        return ToolSchemaError(f"tool {self.tool.name!r}, at {path}: {message}")

    def add(self, name: str, body: str) -> str:
        self.rules[name] = body
        return name

    def rule(self, schema: Any, name: str, path: str) -> str:
        """The name of a rule for `schema` (adding it and what it needs)."""
        if schema is True or schema == {}:
            return "value"
        for keyword in NOT_IN_GBNF:
            if keyword in schema:
                raise self.fail(path, f"the GBNF export cannot enforce {keyword!r}; use the Lark export "
                                      "(llguidance: vLLM, llama.cpp built with LLGUIDANCE) for this tool")
        if "$ref" in schema:
            return self.ref(schema["$ref"], path)
        if "anyOf" in schema:
            rest = {k: v for k, v in schema.items() if k not in ("anyOf", "$defs", "definitions")}
            branches = [dict(rest, **b) if isinstance(b, dict) else b for b in schema["anyOf"]]
            alts = [self.rule(b, f"{name}-{i}", f"{path}.anyOf[{i}]") for i, b in enumerate(branches)]
            return self.add(name, " | ".join(alts))
        if "const" in schema:
            return self.add(name, gbnf_literal(json.dumps(schema["const"])))
        if "enum" in schema:
            return self.add(name, " | ".join(gbnf_literal(json.dumps(v)) for v in schema["enum"]))
        kind = schema.get("type")
        if isinstance(kind, list):
            alts = [self.rule(dict(schema, type=k), f"{name}-{k}", path) for k in kind]
            return self.add(name, " | ".join(alts))
        if kind is None:
            if "properties" in schema or "additionalProperties" in schema:
                kind = "object"
            elif "items" in schema or "prefixItems" in schema:
                kind = "array"
            else:
                return "value"
        if kind == "string":
            if "minLength" in schema or "maxLength" in schema:
                low, high = schema.get("minLength", 0), schema.get("maxLength")
                count = f"{{{low},}}" if high is None else f"{{{low},{high}}}"
                return self.add(name, f'"\\"" char{count} "\\""')
            return "string"
        if kind in ("integer", "number", "boolean", "null"):
            return kind
        if kind == "array":
            return self.array(schema, name, path)
        if kind == "object":
            return self.object(schema, name, path)
        raise self.fail(path, f"unknown type {kind!r}")

    def ref(self, ref: str, path: str) -> str:
        if ref == "#":
            return f"{self.prefix}-args"  # the root rule, added by `tool_call_gbnf`
        key = ref.rsplit("/", 1)[-1]
        section = "$defs" if ref.startswith("#/$defs/") else "definitions"
        target = self.root.get(section, {}).get(key)
        if target is None:
            raise self.fail(path, f"$ref {ref!r} names no definition")
        name = f"{self.prefix}-def-{re.sub(r'[^A-Za-z0-9]', '-', key)}"
        if name not in self.rules:
            self.rules[name] = '""'  # reserved first: a definition may refer to itself
            self.rules[name] = self.rule(target, name + "-x", f"{path}->{ref}")
        return name

    def array(self, schema: dict[str, Any], name: str, path: str) -> str:
        low, high = schema.get("minItems", 0), schema.get("maxItems")
        prefix = schema.get("prefixItems") or []
        parts = [self.rule(s, f"{name}-p{i}", f"{path}.prefixItems[{i}]") for i, s in enumerate(prefix)]
        items = schema.get("items", True)
        item = None if items is False else self.rule(items, f"{name}-item", f"{path}.items")
        if not prefix:
            body = _repeat(item, low, 0 if item is None else high) if item else ""
            if low and not body:
                raise self.fail(path, f"minItems {low} cannot be met: items is false")
            return self.add(name, f'"[" {body} "]"' if body else '"[]"')
        # The first items follow prefixItems in order (an array may stop early, down to minItems),
        # then `items` for the rest.
        fixed_high = len(prefix) if high is None else min(len(prefix), high)
        alternatives = []
        for n in range(min(low, fixed_high + 1), fixed_high + 1):
            seq = ' ", " '.join(parts[:n])
            if n == len(prefix) and item is not None and (high is None or high > n):
                rest_low = max(low - n, 0)
                rest_high = "" if high is None else str(high - n)
                seq += f' (", " {item}){{{rest_low},{rest_high}}}'
            elif n < low:
                continue
            alternatives.append(f'"[" {seq} "]"' if seq else '"[]"')
        if not alternatives:
            raise self.fail(path, f"minItems {low} cannot be met with these prefixItems and items")
        return self.add(name, " | ".join(alternatives))

    def object(self, schema: dict[str, Any], name: str, path: str) -> str:
        props = list((schema.get("properties") or {}).items())
        required = set(schema.get("required", []))
        outside = sorted(required - {key for key, _ in props})
        if outside:
            raise self.fail(path, f"the GBNF export cannot require {outside}, which are not in 'properties'")
        extra = schema.get("additionalProperties", not props)
        kvs = [f"{gbnf_literal(json.dumps(key) + ': ')} {self.rule(sub, f'{name}-{i}', f'{path}.properties.{key}')}"
               for i, (key, sub) in enumerate(props)]
        extra_kv = None
        if extra is not False:
            extra_rule = "value" if extra is True else self.rule(extra, f"{name}-extra", f"{path}.additionalProperties")
            extra_kv = f'string ": " {extra_rule}'
        # rest[i]: properties i.. after something was written (each after ", "); first[i]: none written yet.
        # Each level is its own rule, so the grammar grows linearly with the properties.
        n = len(props)
        rest = f'(", " {extra_kv})*' if extra_kv else ""
        first = f'({extra_kv} (", " {extra_kv})*)?' if extra_kv else ""
        for i in range(n - 1, -1, -1):
            rest_name = self.add(f"{name}-r{i + 1}", rest) if rest else ""
            with_it = f"{kvs[i]} {rest_name}".strip()
            if props[i][0] in required:
                rest, first = f'", " {with_it}', with_it
            else:
                first_name = self.add(f"{name}-f{i + 1}", first) if first else '""'
                rest = f'(", " {kvs[i]})? {rest_name}'.strip()
                first = f"{with_it} | {first_name}"
        return self.add(name, f'"{{" ({first}) "}}"' if first else '"{}"')


def tool_call_gbnf(tools: Sequence[Tool], frame: tuple[str, str], options: CallOptions = DEFAULT_OPTIONS) -> str:
    """The GBNF grammar of a tool-call answer for these tools and options (root rule ``root``): the
    calls, a list between `frame`'s two strings (the card format's `list_frame`)."""
    opening, closing = frame
    tools = options.callable_tools(tools)
    if options.min_calls and not tools:
        raise ToolChoiceError(f"at least {options.min_calls} call(s) required, but no tool is given")
    rules: dict[str, str] = dict(_BASE_RULES)
    if not tools or options.max_calls == 0:
        rules["root"] = gbnf_literal(opening + closing)
        return _format(rules)
    calls = []
    for i, tool in enumerate(tools):
        converter = _Converter(tool, i, rules)
        args = converter.rule(tool.parameters, f"t{i}-args", "parameters")
        if args != f"t{i}-args":
            rules[f"t{i}-args"] = args
        head = gbnf_literal('{"name": ' + json.dumps(tool.name) + ', "arguments": ')
        calls.append(converter.add(f"call-{i}", f'{head} t{i}-args "}}"'))
    rules["call"] = " | ".join(calls)
    low = max(options.min_calls, 1)
    sequence = _repeat("call", low, options.max_calls, sep="sep")
    body = f"ws-nl? {sequence} ws-nl?"
    rules["root"] = f"{gbnf_literal(opening)} {body if options.min_calls else f'({body})?'} {gbnf_literal(closing)}"
    return _format(rules)


def _format(rules: dict[str, str]) -> str:
    order = ["root"] + sorted(k for k in rules if k != "root")
    return "\n".join(f"{name} ::= {rules[name]}" for name in order) + "\n"
