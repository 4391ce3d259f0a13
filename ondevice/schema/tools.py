"""Tool definitions: validation, and their parameters read as standard JSON Schema (the judge).

Accepted tool shapes: ``{"name", "description", "parameters"}`` (the model card's and BFCL's) and
OpenAI-style ``{"type": "function", "function": {...}}``. Parameters may be written in any JSON Schema
draft (4 to 2020-12) or in the BFCL dialect (``"dict"``, ``"float"``, ``"tuple"``, ``"any"``, a
per-property ``"optional"``, an array's item values given as an ``"enum"`` of scalars on the array).
Here they are rewritten, meaning for meaning, to JSON Schema 2020-12: ``Tool.parameters`` is the
caller's schema in that one language, and every constrained answer is validated against it.

What the grammar enforces (``Tool.grammar_schema``, built by ``grammar_schema.py``) is a subset of it,
except at the keywords listed in ``Tool.relaxed`` (which the grammar cannot enforce): the engine checks
those tools' calls against ``Tool.parameters`` after decoding and draws a failing call again. A tool
marked ``strict: true`` (OpenAI's flag) relaxes nothing: such a keyword is refused.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Iterable, Optional

import jsonschema

from ..errors import ToolSchemaError
from ..settings import MAX_SCHEMA_DEPTH
from .json_value import check_tools_value
from .limits import check_tools_depth
from .grammar_schema import Relaxation, enforceable

# BFCL and Python-flavoured type names, mapped to JSON Schema. "any" means no type constraint.
TYPE_ALIASES: dict[str, str | None] = {
    "dict": "object",
    "float": "number",
    "double": "number",
    "tuple": "array",
    "list": "array",
    "int": "integer",
    "bool": "boolean",
    "str": "string",
    "any": None,
}
JSON_TYPES = frozenset({"string", "integer", "number", "boolean", "null", "array", "object"})

# Keywords whose value is one subschema, a list of them, or a map of them (all drafts).
SUBSCHEMA = frozenset({"additionalProperties", "additionalItems", "unevaluatedProperties", "unevaluatedItems",
                       "contains", "propertyNames", "not", "if", "then", "else"})
SUBSCHEMA_LIST = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
SUBSCHEMA_MAP = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})


@dataclass(frozen=True)
class Tool:
    """A validated tool: its name, description, parameters (the caller's schema as JSON Schema 2020-12,
    the judge of every answer), the schema the grammar enforces (a subset of it but at `relaxed`), and
    the keywords the grammar leaves to the check after decoding."""

    name: str
    description: str
    parameters: dict[str, Any]
    grammar_schema: dict[str, Any]
    relaxed: tuple[Relaxation, ...] = ()

    def call_schema(self, arguments_key: str = "arguments", after: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        """JSON Schema of one call as the grammar enforces it: ``{"name": <const>, "arguments": ...}``
        (the arguments under `arguments_key`: Llama 3 writes ``"parameters"``; then the required
        members `after` names, with their schemas: Mistral's ``"id"``)."""
        args = copy.deepcopy(self.grammar_schema)
        # $defs must sit at the root of the schema that refers to them: hoist them one level up.
        hoisted = {key: args.pop(key) for key in ("$defs", "definitions") if key in args}
        at = f"#/properties/{arguments_key}"
        _rewrite_refs(args, lambda ref: at + ref[1:] if ref == "#" or ref.startswith("#/properties") else ref)
        schema = {
            "type": "object",
            "properties": {"name": {"const": self.name}, arguments_key: args, **(after or {})},
            "required": ["name", arguments_key, *(after or {})],
            "additionalProperties": False,
        }
        schema.update(hoisted)
        return schema


@lru_cache(maxsize=4096)
def schema_validator(schema_json: str) -> Any:
    """A JSON Schema validator for a schema given as JSON text (cached)."""
    schema = json.loads(schema_json)
    return jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)(schema)


def _validator(schema: dict[str, Any]) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(schema)


def _rewrite_refs(node: Any, fn: Callable[[str], str]) -> None:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            node["$ref"] = fn(node["$ref"])
        for value in node.values():
            _rewrite_refs(value, fn)
    elif isinstance(node, list):
        for value in node:
            _rewrite_refs(value, fn)


def _unwrap(tool: Any, index: int) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise ToolSchemaError(f"tool #{index}: expected a JSON object, got {type(tool).__name__}")
    if tool.get("type") == "function" and "function" in tool:
        inner = tool["function"]
        if not isinstance(inner, dict):
            raise ToolSchemaError(
                f"tool #{index}: expected 'function' to be an object, got {type(inner).__name__}"
            )
        return inner
    return tool


def normalize_tools(tools: Any) -> list[Tool]:
    """Validate the caller's tools; return them with their parameters as JSON Schema 2020-12 and the
    schema the grammar enforces.

    A keyword the grammar cannot enforce is relaxed (``Tool.relaxed``), or, in a tool marked
    ``strict: true``, refused. Raises ToolSchemaError naming the tool and the problem: not a list,
    missing or non-string name, duplicate names, parameters that are not an object schema, a refused
    keyword (with the place); InputLimitError for a tool nesting deeper than any
    max_schema_depth allows (the schema is read recursively).
    """
    if tools is None:
        return []
    if isinstance(tools, dict):
        raise ToolSchemaError("expected the tools to be a JSON array of tool objects, got a single object: wrap it in [ ]")
    if not isinstance(tools, (list, tuple)):
        raise ToolSchemaError(f"expected the tools to be a JSON array, got {type(tools).__name__}")
    check_tools_depth(tools, MAX_SCHEMA_DEPTH)
    check_tools_value(tools)
    result: list[Tool] = []
    seen: set[str] = set()
    for index, raw in enumerate(tools):
        spec = _unwrap(raw, index)
        name = spec.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ToolSchemaError(f"tool #{index}: missing 'name' (a non-empty string), got {name!r}")
        if name in seen:
            raise ToolSchemaError(f"tool #{index}: duplicate name {name!r}: each tool needs a unique name")
        seen.add(name)
        description = spec.get("description", "")
        if not isinstance(description, str):
            raise ToolSchemaError(f"tool {name!r}: expected 'description' to be a string, got {type(description).__name__}")
        params = spec.get("parameters")
        if params is None:
            params = {"type": "object", "properties": {}}
        if not isinstance(params, dict):
            raise ToolSchemaError(
                f"tool {name!r}: expected 'parameters' to be a JSON Schema object, got {type(params).__name__}"
            )
        declared = params.get("type", "object")
        if declared not in ("object", "dict"):
            raise ToolSchemaError(
                f"tool {name!r}: expected 'parameters' to have type 'object' (or BFCL's 'dict'), got {declared!r}"
            )
        schema = to_json_schema(params, name)
        schema["type"] = "object"
        strict = spec.get("strict") is True
        relaxed: Optional[list[Relaxation]] = None if strict else []
        try:
            grammar_schema = enforceable(schema, name, relaxed)
        except ToolSchemaError as exc:
            if strict and "unsupported JSON Schema keyword" in str(exc):
                raise ToolSchemaError(f"{exc} (the tool is marked strict: true, so no keyword is relaxed; without "
                                      "strict it would be checked after decoding instead)") from None
            raise
        result.append(Tool(name=name, description=description, parameters=schema, grammar_schema=grammar_schema,
                           relaxed=tuple(relaxed or ())))
    return result


def relaxations(tools: Iterable[Tool]) -> list[Relaxation]:
    """Every keyword the grammar leaves to the check after decoding, over `tools`."""
    return [r for t in tools for r in t.relaxed]


def to_json_schema(parameters: dict[str, Any], tool_name: str = "<tool>") -> dict[str, Any]:
    """The caller's parameters as JSON Schema 2020-12 (BFCL dialect and older drafts rewritten, meaning
    kept), for `jsonschema`: the judge of every answer."""
    schema = _Dialect(tool_name).schema(parameters, "parameters")
    if not isinstance(schema, dict):
        raise ToolSchemaError(f"tool {tool_name!r}: expected 'parameters' to be a JSON Schema object, got {parameters!r}")
    try:
        _validator(schema)  # a malformed schema (bad pattern, wrong keyword types) fails here, not mid-call
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "parameters" + "".join(f"[{json.dumps(p)}]" for p in exc.path)
        raise ToolSchemaError(f"tool {tool_name!r}, at {where}: not a valid JSON Schema: {exc.message}") from None
    return schema


class _Dialect:
    """BFCL dialect and drafts 3-7 spellings to JSON Schema 2020-12, at every schema position."""

    def __init__(self, tool: str):
        self.tool = tool

    def fail(self, path: str, message: str) -> ToolSchemaError:
        return ToolSchemaError(f"tool {self.tool!r}, at {path}: {message}")

    def schema(self, node: Any, path: str) -> Any:
        if isinstance(node, bool):
            return node
        if not isinstance(node, dict):
            raise self.fail(path, f"expected a schema object, got {json.dumps(node)[:60]}")
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in ("optional", "$schema"):
                continue
            if key == "type":
                mapped = self.type_(value, path)
                if mapped is not None:
                    out["type"] = mapped
            elif key == "required" and isinstance(value, bool):
                continue  # draft-3 flag on a property: read by its parent
            elif key == "required":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise self.fail(path, f"expected 'required' to be a list of property names, got {value!r}")
                out["required"] = list(dict.fromkeys(value))
            elif key in SUBSCHEMA_MAP:
                if not isinstance(value, dict):
                    raise self.fail(path, f"expected '{key}' to be an object, got {type(value).__name__}")
                out[key] = {k: self.schema(v, f"{path}.{key}.{k}") for k, v in value.items()}
            elif key in SUBSCHEMA_LIST:
                if not isinstance(value, list):
                    raise self.fail(path, f"expected '{key}' to be a list, got {type(value).__name__}")
                if not value and key != "prefixItems":
                    raise self.fail(path, f"'{key}' is empty: give at least one schema")
                out[key] = [self.schema(v, f"{path}.{key}[{i}]") for i, v in enumerate(value)]
            elif key == "items" and isinstance(value, list):  # drafts 4-7 tuple form
                out["prefixItems"] = [self.schema(v, f"{path}.items[{i}]") for i, v in enumerate(value)]
                if "additionalItems" in node:
                    out["items"] = self.schema(node["additionalItems"], f"{path}.additionalItems")
            elif key == "items":
                out["items"] = self.schema(value, f"{path}.items")
            elif key == "additionalItems":
                continue  # with a tuple 'items' it became 'items'; otherwise it has no effect
            elif key in SUBSCHEMA:
                out[key] = self.schema(value, f"{path}.{key}")
            elif key == "dependencies":  # drafts 4-7: split into the 2019-09 keywords
                if not isinstance(value, dict):
                    raise self.fail(path, f"expected 'dependencies' to be an object, got {type(value).__name__}")
                for prop, dep in value.items():
                    if isinstance(dep, list):
                        out.setdefault("dependentRequired", {})[prop] = dep
                    else:
                        out.setdefault("dependentSchemas", {})[prop] = self.schema(dep, f"{path}.dependencies.{prop}")
            elif key == "enum":
                if not isinstance(value, list):
                    raise self.fail(path, f"expected 'enum' to be a list, got {type(value).__name__}")
                if not value:
                    raise self.fail(path, "'enum' is empty: no value could satisfy it")
                out[key] = value
            elif key in ("exclusiveMinimum", "exclusiveMaximum") and isinstance(value, bool):
                continue  # draft-4 flag: read with minimum/maximum below
            else:
                out[key] = value
        for flag, bound in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if node.get(flag) is True and bound in out:
                out[flag] = out.pop(bound)
        props = node.get("properties")
        if isinstance(props, dict):
            flagged = [p for p, sub in props.items() if isinstance(sub, dict) and sub.get("required") is True]
            optional = {p for p, sub in props.items() if isinstance(sub, dict) and sub.get("optional") is True}
            if flagged:
                out["required"] = list(dict.fromkeys(out.get("required", []) + flagged))
            if optional and "required" in out:
                out["required"] = [r for r in out["required"] if r not in optional]
        self.array_enum(out)
        return out

    @staticmethod
    def array_enum(out: dict[str, Any]) -> None:
        # BFCL writes an array's allowed item values as an "enum" of scalars on the array itself,
        # which no array satisfies in standard JSON Schema: it means the items' enum.
        values = out.get("enum")
        if out.get("type") == "array" and isinstance(values, list) and not any(isinstance(v, (list, dict)) for v in values):
            items = out.get("items")
            items = dict(items) if isinstance(items, dict) else {}
            items["enum"] = out.pop("enum")
            out["items"] = items

    def type_(self, value: Any, path: str) -> Any:
        names: Iterable[Any] = value if isinstance(value, list) else [value]
        mapped: list[str] = []
        for name in names:
            if not isinstance(name, str):
                raise self.fail(path, f"expected 'type' to be a type name, got {name!r}")
            lowered = name.lower() if name.lower() in JSON_TYPES | set(TYPE_ALIASES) else name
            if lowered in JSON_TYPES:
                mapped.append(lowered)
            elif lowered in TYPE_ALIASES:
                alias = TYPE_ALIASES[lowered]
                if alias is None:
                    return None  # "any" in a list makes the whole list unconstrained
                mapped.append(alias)
            else:
                raise self.fail(path, f"unknown type {name!r}: expected one of {sorted(JSON_TYPES | set(TYPE_ALIASES))}")
        mapped = list(dict.fromkeys(mapped))
        if not mapped:
            raise self.fail(path, "'type' is an empty list")
        return mapped[0] if len(mapped) == 1 else mapped
