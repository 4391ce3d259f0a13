"""Tools from Python functions: a JSON Schema read from the signature and the docstring, and the
model's arguments turned back into the values the function takes.

    def get_weather(city: str, unit: Literal["celsius", "fahrenheit"] = "celsius") -> str:
        '''The current weather in a city.

        Args:
            city: the city's name, e.g. "Paris".
        '''
    tool_from_function(get_weather)
    # {"name": "get_weather", "description": "The current weather in a city.", "parameters": {"type":
    #  "object", "properties": {"city": {"type": "string", "description": "the city's name, e.g. \\"Paris\\"."},
    #  "unit": {"enum": ["celsius", "fahrenheit"], "type": "string", "default": "celsius"}}, "required": ["city"]}}

pydantic is optional: a parameter typed with a pydantic model gets the model's own JSON Schema and is
validated into an instance before the call; without pydantic installed such a parameter cannot occur.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import inspect
import json
import re
import types
import typing
from typing import Any, Callable, Optional

from ..errors import ToolSchemaError

_PRIMITIVES: dict[Any, str] = {str: "string", int: "integer", float: "number", bool: "boolean", type(None): "null"}
_SECTION = re.compile(r"^\s*(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises|Examples?|Notes?|See Also)\s*:?\s*$")
_NUMPY_RULE = re.compile(r"^\s*-{3,}\s*$")
_GOOGLE_ARG = re.compile(r"^(\*{0,2}\w+)\s*(\([^)]*\))?\s*:\s*(.*)$")
_NUMPY_ARG = re.compile(r"^(\*{0,2}\w+)\s*(:\s*.*)?$")


def tool_from_function(fn: Callable[..., Any], name: Optional[str] = None,
                       description: Optional[str] = None) -> dict[str, Any]:
    """The tool dict (``{"name", "description", "parameters"}``) of a Python function: parameters from
    its type hints (str, int, float, bool, None, Optional, unions, list, tuple, dict, Literal, Enum,
    pydantic models, ``Annotated[x, "description"]`` or ``Annotated[x, Field(description=...)]``),
    a parameter with a default not required, the description from the docstring's first paragraph and
    each parameter's from its "Args:" (Google) or "Parameters" (NumPy) section.

    Raises ToolSchemaError naming the parameter when a type has no JSON Schema (``*args``, a class
    that is neither an Enum nor a pydantic model, ...)."""
    if not callable(fn):
        raise ToolSchemaError(f"expected a function, got {type(fn).__name__}")
    tool_name = name or getattr(fn, "__name__", None)
    if not tool_name or tool_name == "<lambda>":
        raise ToolSchemaError(f"{fn!r} has no name: pass name=... to tool_from_function")
    summary, arg_docs = parse_docstring(inspect.getdoc(fn) or "")
    hints = _hints(fn, tool_name)
    properties: dict[str, Any] = {}
    required: list[str] = []
    defs: dict[str, Any] = {}
    for param in _parameters(fn, tool_name):
        where = f"function {tool_name!r}, parameter {param.name!r}"
        schema, doc = _schema(hints.get(param.name, param.annotation), where, defs)
        doc = doc or arg_docs.get(param.name)
        if doc and "description" not in schema:
            schema["description"] = doc
        if param.default is inspect.Parameter.empty:
            required.append(param.name)
        else:
            default = _jsonable_default(param.default)
            if default is not _NO_DEFAULT:
                schema["default"] = default
        properties[param.name] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    if defs:
        parameters["$defs"] = defs
    return {"name": tool_name, "description": description if description is not None else summary,
            "parameters": parameters}


def call_with_arguments(fn: Callable[..., Any], arguments: dict[str, Any]) -> Any:
    """Call `fn` with the model's arguments (JSON values), each turned into the parameter's declared
    type where JSON has no such value: an Enum member, a pydantic model instance, a tuple."""
    hints = _hints(fn, getattr(fn, "__name__", "<tool>"))
    converted = {key: _convert(value, hints.get(key)) for key, value in arguments.items()}
    return fn(**converted)


def parse_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The first paragraph (its lines joined) and the per-parameter descriptions of a Google-style
    ("Args:") or NumPy-style ("Parameters" underlined) docstring; anything else is ignored."""
    lines = doc.expandtabs().splitlines()
    summary_lines: list[str] = []
    for line in lines:
        if not line.strip() or _SECTION.match(line):
            break
        summary_lines.append(line.strip())
    args: dict[str, str] = {}
    i = 0
    while i < len(lines):
        header = _SECTION.match(lines[i])
        numpy = header is not None and i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1]) is not None
        if header is None or header.group(1) not in ("Args", "Arguments", "Parameters", "Params"):
            i += 1
            continue
        i += 2 if numpy else 1
        base: Optional[int] = None  # the indentation of the entries' first lines
        current: Optional[str] = None
        while i < len(lines):
            line = lines[i]
            if not line.strip():
                i += 1
                if numpy and i < len(lines) and _SECTION.match(lines[i]):
                    break
                continue
            indent = len(line) - len(line.lstrip())
            if base is None:
                base = indent
            if indent < base or (numpy and _SECTION.match(line) and i + 1 < len(lines) and _NUMPY_RULE.match(lines[i + 1])):
                break
            if not numpy and _SECTION.match(line) and indent <= base:
                break
            entry = (_NUMPY_ARG if numpy else _GOOGLE_ARG).match(line.strip()) if indent == base else None
            if entry:
                current = entry.group(1).lstrip("*")
                args[current] = "" if numpy else entry.group(3).strip()
            elif current is not None:
                args[current] = (args[current] + " " + line.strip()).strip()
            i += 1
    return " ".join(summary_lines), {k: v for k, v in args.items() if v}


# --- types to JSON Schema -------------------------------------------------------------------------------

_NO_DEFAULT = object()


def _hints(fn: Callable[..., Any], tool_name: str) -> dict[str, Any]:
    target = fn.__call__ if not inspect.isroutine(fn) and not inspect.isclass(fn) and hasattr(fn, "__call__") else fn
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:  # a forward reference that does not resolve, a bad annotation
        raise ToolSchemaError(f"function {tool_name!r}: its type hints cannot be read ({type(exc).__name__}: "
                              f"{exc}): import what they name where the function is defined") from None


def _parameters(fn: Callable[..., Any], tool_name: str) -> list[inspect.Parameter]:
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError) as exc:
        raise ToolSchemaError(f"function {tool_name!r}: no signature to read ({exc})") from None
    for p in params:
        if p.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD, inspect.Parameter.POSITIONAL_ONLY):
            raise ToolSchemaError(f"function {tool_name!r}, parameter {p.name!r}: a tool's arguments are passed by "
                                  "keyword; use named parameters (no *args, **kwargs or positional-only ones)")
    return params


def _jsonable_default(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        value = value.value
    if value is None:
        return _NO_DEFAULT  # `x: Model = None`: a None the schema may not admit; optional says enough
    try:
        return json.loads(json.dumps(value, allow_nan=False))  # a tuple default becomes a JSON array
    except (TypeError, ValueError):
        return _NO_DEFAULT  # not a JSON value: the parameter is optional, its default left unsaid


def _annotated_doc(metadata: tuple[Any, ...]) -> Optional[str]:
    for item in metadata:
        if isinstance(item, str) and item.strip():
            return item.strip()
        described = getattr(item, "description", None)  # pydantic's Field(description=...), or alike
        if isinstance(described, str) and described.strip():
            return described.strip()
    return None


def _pydantic_model(tp: Any) -> bool:
    return inspect.isclass(tp) and hasattr(tp, "model_json_schema") and hasattr(tp, "model_validate")


def _schema(tp: Any, where: str, defs: dict[str, Any]) -> tuple[dict[str, Any], Optional[str]]:
    """The JSON Schema of an annotation, and the description an ``Annotated`` gave it."""
    if typing.get_origin(tp) is typing.Annotated:
        inner, *metadata = typing.get_args(tp)
        schema, doc = _schema(inner, where, defs)
        return schema, _annotated_doc(tuple(metadata)) or doc
    return _type_schema(tp, where, defs), None


def _type_schema(tp: Any, where: str, defs: dict[str, Any]) -> dict[str, Any]:
    if tp is inspect.Parameter.empty or tp is Any or tp is object:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp in _PRIMITIVES:
        return {"type": _PRIMITIVES[tp]}
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _schema(tp, where, defs)[0]
    if origin in (typing.Union, types.UnionType):
        options = [_type_schema(a, where, defs) for a in args]
        simple = [o.get("type") for o in options if set(o) == {"type"} and isinstance(o.get("type"), str)]
        if len(simple) == len(options):
            return {"type": simple}  # Optional[int] -> {"type": ["integer", "null"]}
        return {"anyOf": options}
    if origin is typing.Literal:
        values = [a.value if isinstance(a, enum.Enum) else a for a in args]
        schema: dict[str, Any] = {"enum": values}
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        values = [member.value for member in tp]
        schema = {"enum": values}
        kinds = {_PRIMITIVES.get(type(v)) for v in values}
        if len(kinds) == 1 and None not in kinds:
            schema["type"] = kinds.pop()
        return schema
    if tp in (list, set, frozenset) or origin in (list, set, frozenset, collections.abc.Sequence,
                                                 collections.abc.Set, collections.abc.Iterable):
        schema = {"type": "array"}
        if args:
            schema["items"] = _type_schema(args[0], where, defs)
        # A set gets no uniqueItems (the grammar cannot enforce it over open items): duplicates collapse
        # when the value becomes a set for the call.
        return schema
    if tp is tuple or origin is tuple:
        if not args:
            return {"type": "array"}
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], where, defs)}
        items = [_type_schema(a, where, defs) for a in args]
        return {"type": "array", "prefixItems": items, "minItems": len(items), "maxItems": len(items)}
    if tp is dict or origin in (dict, collections.abc.Mapping):
        schema = {"type": "object"}
        if args and args[0] is not str:
            raise ToolSchemaError(f"{where}: a dict's keys are JSON object keys: annotate it dict[str, ...]")
        if len(args) == 2 and args[1] is not Any:
            schema["additionalProperties"] = _type_schema(args[1], where, defs)
        return schema
    if _pydantic_model(tp):
        return _model_schema(tp, defs)
    name = getattr(tp, "__name__", repr(tp))
    raise ToolSchemaError(f"{where}: no JSON Schema for the type {name}: use str, int, float, bool, list, dict, "
                          "Literal, an Enum or a pydantic model")


def _model_schema(model: Any, defs: dict[str, Any]) -> dict[str, Any]:
    # The model's own $defs move to the root of the parameters, where its "#/$defs/..." refs point.
    schema = model.model_json_schema()
    defs.update(schema.pop("$defs", {}))
    return schema


# --- JSON values back to Python ---------------------------------------------------------------------------

def _convert(value: Any, tp: Any) -> Any:
    """A JSON value as the annotation `tp` declares it, where JSON differs (Enum, pydantic, tuple, set)."""
    if tp is None:
        return value
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Annotated:
        return _convert(value, args[0])
    if origin in (typing.Union, types.UnionType):
        if value is None:
            return None
        for option in args:  # the first option the value fits; else the value as it came
            if option is type(None):
                continue
            try:
                return _convert(value, option)
            except Exception:
                continue
        return value
    if inspect.isclass(tp) and issubclass(tp, enum.Enum):
        return tp(value)
    if _pydantic_model(tp):
        return tp.model_validate(value)
    if dataclasses.is_dataclass(tp):
        return value
    if isinstance(value, list):
        if origin is tuple or tp is tuple:
            if len(args) == 2 and args[1] is Ellipsis:
                return tuple(_convert(v, args[0]) for v in value)
            return tuple(_convert(v, a) for v, a in zip(value, args)) if args else tuple(value)
        item = args[0] if args else None
        items = [_convert(v, item) for v in value]
        if tp in (set, frozenset) or origin in (set, frozenset, collections.abc.Set):
            return (frozenset if origin is frozenset or tp is frozenset else set)(items)
        return items
    if isinstance(value, dict) and origin in (dict, collections.abc.Mapping) and len(args) == 2:
        return {k: _convert(v, args[1]) for k, v in value.items()}
    return value
