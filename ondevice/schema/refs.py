"""Compile-time checks of a tool's `$ref`s: every target exists, and no definition needs itself forever.

llguidance compiles a schema whose `$defs` entry only refers to itself (``{"y": {"$ref": "#/$defs/y"}}``)
or requires an endless chain of itself, and then fails in the middle of decoding. Both are refused
here, before a model loads, with the tool and the path named.

"Needs" is judged conservatively, so a satisfiable schema is never refused: a `$ref` and the
`required` properties of a ``"type": "object"``, the `anyOf` branches (one suffices), and the first
`minItems` items of a ``"type": "array"`` must be satisfiable; nothing else is assumed.
"""

from __future__ import annotations

from typing import Any, Iterator
from urllib.parse import unquote

from ..errors import ToolSchemaError

Pointer = tuple[str, ...]


def check_refs(tool_name: str, parameters: dict[str, Any]) -> None:
    """ToolSchemaError naming the tool and the path when a `$ref` in `parameters` (a normalized tool
    schema) points nowhere, or a definition (or the parameters themselves) can never be satisfied."""
    targets: dict[Pointer, Any] = {(): parameters}
    for path, ref in _refs(parameters, "parameters"):
        pointer = _pointer(ref)
        targets[pointer] = _resolve(parameters, pointer, tool_name, path, ref)
    for key in ("$defs", "definitions"):
        for name, schema in (parameters.get(key) or {}).items():
            targets[(key, name)] = schema

    satisfiable = {pointer: False for pointer in targets}  # least fixpoint: proven by a finite value
    changed = True
    while changed:
        changed = False
        for pointer, schema in targets.items():
            if not satisfiable[pointer] and _satisfiable(schema, satisfiable):
                satisfiable[pointer] = changed = True
    for pointer, schema in sorted(targets.items(), key=lambda item: not item[0]):  # $defs before the root
        named = not pointer or (len(pointer) == 2 and pointer[0] in ("$defs", "definitions"))
        if named and not satisfiable[pointer]:
            blocking = sorted({_ref_text(p) for p in _refs_needed(schema) if not satisfiable.get(p, True)})
            where = ".".join(("parameters",) + pointer)
            raise ToolSchemaError(
                f"tool {tool_name!r}, at {where}: no finite value can satisfy this schema: it needs "
                f"{', '.join(blocking) or 'itself'}, which needs itself again without end; give the recursion "
                "a way out (an optional property, an anyOf branch without the $ref, or minItems 0)"
            )


def _satisfiable(schema: Any, known: dict[Pointer, bool]) -> bool:
    """Whether some finite value satisfies `schema`, given which $ref targets are known satisfiable
    (only the constraints listed in the module docstring are considered)."""
    if not isinstance(schema, dict):
        return True
    ref = schema.get("$ref")
    if isinstance(ref, str) and not known.get(_pointer(ref), True):
        return False
    branches = schema.get("anyOf")
    if isinstance(branches, list) and branches and not any(_satisfiable(b, known) for b in branches):
        return False
    return all(_satisfiable(sub, known) for sub in _required_parts(schema))


def _required_parts(schema: dict[str, Any]) -> list[Any]:
    """The subschemas every value of `schema` must also satisfy: required properties of an object,
    the first minItems items of an array."""
    parts: list[Any] = []
    props = schema.get("properties")
    if schema.get("type") == "object" and isinstance(props, dict):
        parts += [props[name] for name in schema.get("required") or [] if name in props]
    if schema.get("type") == "array":
        min_items = schema.get("minItems", 0)
        prefix = schema.get("prefixItems") or []
        parts += prefix[:min_items]
        if min_items > len(prefix) and isinstance(schema.get("items"), dict):
            parts.append(schema["items"])
    return parts


def _refs_needed(schema: Any) -> Iterator[Pointer]:
    """The $ref targets in `schema`'s needed positions (for the message)."""
    if not isinstance(schema, dict):
        return
    if isinstance(schema.get("$ref"), str):
        yield _pointer(schema["$ref"])
    for sub in _required_parts(schema) + list(schema.get("anyOf") or []):
        yield from _refs_needed(sub)


def _refs(node: Any, path: str) -> Iterator[tuple[str, str]]:
    """(path, ref) of every $ref under `node`, iteratively."""
    stack = [(node, path)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            if isinstance(node.get("$ref"), str):
                yield path, node["$ref"]
            for key, value in node.items():
                stack.append((value, f"{path}.{key}"))
        elif isinstance(node, list):
            stack.extend((value, f"{path}[{i}]") for i, value in enumerate(node))


def _pointer(ref: str) -> Pointer:
    """'#/$defs/a~1b' -> ('$defs', 'a/b'); '#' -> ()."""
    body = unquote(ref[1:])
    if not body:
        return ()
    return tuple(part.replace("~1", "/").replace("~0", "~") for part in body.split("/")[1:])


def _ref_text(pointer: Pointer) -> str:
    return "#" + "".join("/" + part.replace("~", "~0").replace("/", "~1") for part in pointer)


def _resolve(root: dict[str, Any], pointer: Pointer, tool_name: str, path: str, ref: str) -> Any:
    node: Any = root
    for depth, part in enumerate(pointer):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            where = _ref_text(pointer[:depth]) if depth else "the parameters"
            known = sorted(node)[:12] if isinstance(node, dict) else []
            raise ToolSchemaError(
                f"tool {tool_name!r}, at {path}: $ref {ref!r} points to nothing: {where} has no {part!r}"
                + (f" (it has: {', '.join(known)})" if known else "")
                + "; add the definition or fix the $ref"
            )
    return node
