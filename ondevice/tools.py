"""Tool definitions: validation, and their parameters as standard JSON Schema.

Accepted tool shapes: ``{"name", "description", "parameters"}`` (the model card's and BFCL's) and
OpenAI-style ``{"type": "function", "function": {...}}``. Parameters may use the BFCL dialect
(``"dict"``, ``"float"``, ``"tuple"``, ``"any"``, a per-property ``"optional"``, an array's item values
given as an ``"enum"`` of scalars on the array), which is rewritten
to standard JSON Schema here, so that the grammar and the validator see one language.

What the grammar enforces is exactly the normalized schema. Keywords it cannot enforce are refused
with an error naming the tool and the keyword, except the documented relaxations in RELAXED.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any, Callable, Iterable

from .errors import ToolSchemaError

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

# Keywords the grammar enforces (kept in the normalized schema).
ENFORCED = frozenset(
    {
        "type", "properties", "required", "additionalProperties", "items", "prefixItems",
        "minItems", "maxItems", "enum", "const", "anyOf", "oneOf", "$ref", "$defs", "definitions",
        "minLength", "maxLength", "pattern", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
        "multipleOf",
    }
)
# Annotations: carry no constraint, dropped.
ANNOTATIONS = frozenset(
    {"description", "title", "default", "examples", "$comment", "deprecated", "readOnly", "writeOnly",
     "$schema", "$id", "x-guidance"}
)
# Documented relaxations: accepted, not enforced by the grammar (see README, "Schema support").
RELAXED = {
    "format": "string formats (date-time, email, ...) are not enforced: the value is any string",
}
# "oneOf" is enforced as "anyOf": a value matching two branches passes (documented).


@dataclass(frozen=True)
class Tool:
    """A validated tool: its name, description and parameters as standard JSON Schema."""

    name: str
    description: str
    parameters: dict[str, Any]

    def call_schema(self) -> dict[str, Any]:
        """JSON Schema of one call of this tool: ``{"name": <const>, "arguments": <parameters>}``."""
        args = copy.deepcopy(self.parameters)
        # $defs must sit at the root of the schema that refers to them: hoist them one level up.
        hoisted = {key: args.pop(key) for key in ("$defs", "definitions") if key in args}
        _rewrite_refs(args, lambda ref: "#/properties/arguments" if ref == "#" else ref)
        schema = {
            "type": "object",
            "properties": {"name": {"const": self.name}, "arguments": args},
            "required": ["name", "arguments"],
            "additionalProperties": False,
        }
        schema.update(hoisted)
        return schema


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
    """Validate the caller's tools and return them with standard-JSON-Schema parameters.

    Raises ToolSchemaError naming the tool and the problem: not a list, missing or non-string name,
    duplicate names, parameters that are not an object schema, unsupported keywords.
    """
    if tools is None:
        return []
    if isinstance(tools, dict):
        raise ToolSchemaError("expected the tools to be a JSON array of tool objects, got a single object: wrap it in [ ]")
    if not isinstance(tools, (list, tuple)):
        raise ToolSchemaError(f"expected the tools to be a JSON array, got {type(tools).__name__}")
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
        schema = _Normalizer(name).schema(params, "parameters")
        schema["type"] = "object"
        result.append(Tool(name=name, description=description, parameters=schema))
    return result


def to_json_schema(parameters: dict[str, Any], tool_name: str = "<tool>") -> dict[str, Any]:
    """Standard JSON Schema for a tool's parameters (BFCL dialect rewritten), for `jsonschema`."""
    return _Normalizer(tool_name).schema(parameters, "parameters")


class _Normalizer:
    def __init__(self, tool: str):
        self.tool = tool

    def fail(self, path: str, message: str) -> ToolSchemaError:
        return ToolSchemaError(f"tool {self.tool!r}, at {path}: {message}")

    def schema(self, node: Any, path: str) -> dict[str, Any]:
        if node is True or node == {}:
            return {}
        if not isinstance(node, dict):
            raise self.fail(path, f"expected a schema object, got {json.dumps(node)[:60]}")
        out: dict[str, Any] = {}
        optional_props: list[str] = []
        for key, value in node.items():
            if key in ANNOTATIONS or key in RELAXED or key == "optional":
                continue
            if key not in ENFORCED:
                raise self.fail(
                    path,
                    f"unsupported JSON Schema keyword {key!r}: the grammar cannot enforce it; "
                    f"remove it or express it with: {', '.join(sorted(ENFORCED - {'$defs', 'definitions'}))}",
                )
            if key == "type":
                mapped = self.type_(value, path)
                if mapped is not None:
                    out["type"] = mapped
            elif key == "properties":
                if not isinstance(value, dict):
                    raise self.fail(path, f"expected 'properties' to be an object, got {type(value).__name__}")
                props = {}
                for prop, sub in value.items():
                    sub_path = f"{path}.properties.{prop}"
                    props[prop] = self.schema(sub, sub_path)
                    if isinstance(sub, dict) and sub.get("optional") is True:
                        optional_props.append(prop)
                    if isinstance(sub, dict) and sub.get("required") is True:  # draft-3 style
                        out.setdefault("_required_from_props", []).append(prop)
                out["properties"] = props
            elif key == "required":
                if isinstance(value, bool):
                    continue  # draft-3 style flag on a property: handled by its parent
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise self.fail(path, f"expected 'required' to be a list of property names, got {value!r}")
                out["required"] = list(dict.fromkeys(value))
            elif key in ("items", "additionalProperties"):
                if isinstance(value, bool):
                    out[key] = value
                elif key == "items" and isinstance(value, list):  # draft-4 tuple form
                    out["prefixItems"] = [self.schema(v, f"{path}.items[{i}]") for i, v in enumerate(value)]
                else:
                    out[key] = self.schema(value, f"{path}.{key}")
            elif key == "prefixItems":
                out[key] = [self.schema(v, f"{path}.prefixItems[{i}]") for i, v in enumerate(self.list_(value, key, path))]
            elif key in ("anyOf", "oneOf"):
                branches = self.list_(value, key, path)
                if not branches:
                    raise self.fail(path, f"'{key}' is empty: give at least one schema")
                out["anyOf"] = [self.schema(v, f"{path}.{key}[{i}]") for i, v in enumerate(branches)]
            elif key in ("$defs", "definitions"):
                if not isinstance(value, dict):
                    raise self.fail(path, f"expected '{key}' to be an object, got {type(value).__name__}")
                out[key] = {k: self.schema(v, f"{path}.{key}.{k}") for k, v in value.items()}
            elif key == "$ref":
                if not isinstance(value, str) or not (
                    value == "#" or value.startswith("#/$defs/") or value.startswith("#/definitions/")
                ):
                    raise self.fail(path, f"unsupported $ref {value!r}: only local refs '#/$defs/NAME' (or '#/definitions/NAME') are supported")
                out[key] = value
            elif key == "enum":
                values = self.list_(value, key, path)
                if not values:
                    raise self.fail(path, "'enum' is empty: no value could satisfy it")
                out[key] = values
            elif key in ("minItems", "maxItems", "minLength", "maxLength"):
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise self.fail(path, f"expected '{key}' to be a non-negative integer, got {value!r}")
                out[key] = value
            elif key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"):
                if not isinstance(value, (int, float)) or isinstance(value, bool):
                    raise self.fail(path, f"expected '{key}' to be a number, got {value!r}")
                out[key] = value
            else:  # const, pattern
                out[key] = value
        extra_required = out.pop("_required_from_props", [])
        if extra_required:
            out["required"] = list(dict.fromkeys(out.get("required", []) + extra_required))
        if optional_props and "required" in out:
            out["required"] = [r for r in out["required"] if r not in optional_props]
        self.array_enum(out)
        self.check_object(out, path)
        return out

    @staticmethod
    def array_enum(out: dict[str, Any]) -> None:
        # BFCL writes an array's allowed item values as an "enum" of scalars on the array itself,
        # which no array satisfies in standard JSON Schema: it means the items' enum.
        values = out.get("enum")
        if out.get("type") == "array" and isinstance(values, list) and not any(isinstance(v, (list, dict)) for v in values):
            items = dict(out.get("items") or {})
            items["enum"] = out.pop("enum")
            out["items"] = items

    def check_object(self, out: dict[str, Any], path: str) -> None:
        props = out.get("properties")
        if props is None:
            return
        missing = [r for r in out.get("required", []) if r not in props]
        if missing and out.get("additionalProperties") is not True:
            raise self.fail(path, f"required {missing} not in properties {sorted(props)}: add them or drop them from 'required'")
        # Tool arguments are closed by default: a model must not invent parameters.
        out.setdefault("additionalProperties", False)

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

    def list_(self, value: Any, key: str, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise self.fail(path, f"expected '{key}' to be a list, got {type(value).__name__}")
        return value
