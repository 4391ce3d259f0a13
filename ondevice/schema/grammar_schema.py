"""The schema the grammar enforces, built from the caller's (``Tool.parameters``): always a subset of it.

llguidance compiles JSON Schema itself; this module hands it everything it enforces, unchanged, and
rewrites the rest so that every answer the grammar allows passes the caller's schema:

- pure annotations are dropped: the meta-data keywords (``title``, ``description``, ``default``,
  ``examples``, ``deprecated``, ``readOnly``, ``writeOnly``), ``$comment``, ``$id``, ``$anchor``,
  ``content*``, ``format`` values llguidance does not know, and any key that is no JSON Schema keyword;
- objects are closed where the caller left them open (a model must not invent parameters), over every
  key the object declares, requires or gets from ``allOf``;
- an object's own ``properties``/``required``/... are distributed into its ``oneOf``/``anyOf`` branches;
- ``oneOf`` becomes ``anyOf`` only with branches that exclude each other: proven by type, const or
  enum values, a discriminator property or a required key the other branch forbids; otherwise a
  branch is tightened to forbid a key another branch requires; failing that, the schema is refused;
- ``dependentRequired``/``dependentSchemas`` (and draft-7 ``dependencies``) become ``anyOf``s,
  ``if``/``then``/``else`` too when the condition is a const/enum test on one property whose
  values are a finite set, ``uniqueItems`` an ``enum`` of the distinct-item arrays when the items
  are a small finite set (or is dropped when at most one item is allowed).

- ``propertyNames`` becomes key constraints where it names the keys (``enum``/``const``) or is one
  ``pattern`` on an object with no declared keys; one every string satisfies (``{"type": "string"}``)
  is dropped; ``not: {"required": [key]}`` forbids that key.

Whatever else the grammar cannot enforce is *relaxed* when the caller passes a `relaxed` list: that
keyword alone is dropped from that subschema, and a `Relaxation` (tool, path, keyword) is recorded; the
engine then checks each call against the full schema and draws a failing one again. Without the list
(a tool marked ``strict: true``, a response format) it is refused with the tool, the place and the
keyword. What cannot be checked after decoding either (a remote ``$ref``, draft-3 keywords that 2020-12
ignores) is always refused.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Optional, Sequence

import jsonschema
from llguidance import LLMatcher

from ..errors import ToolSchemaError

# Passed to llguidance as they are.
PASSED = frozenset({
    "type", "enum", "const", "multipleOf", "maximum", "exclusiveMaximum", "minimum", "exclusiveMinimum",
    "maxLength", "minLength", "pattern", "maxItems", "minItems", "required", "minProperties",
    "maxProperties", "$ref",
})
# The JSON Schema vocabulary's annotations (dropped: they constrain nothing).
ANNOTATIONS = frozenset({
    "title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly", "$comment",
    "$schema", "$id", "id", "$anchor", "$vocabulary", "contentEncoding", "contentMediaType", "contentSchema",
})
# Keywords (of some draft) the grammar cannot enforce: refused.
REFUSED = {
    "not": "negation", "contains": "array containment", "minContains": "array containment",
    "maxContains": "array containment", "propertyNames": "key schemas",
    "unevaluatedProperties": "unevaluated properties", "unevaluatedItems": "unevaluated items",
    "$dynamicRef": "dynamic references", "$dynamicAnchor": "dynamic references",
    "$recursiveRef": "recursive references", "$recursiveAnchor": "recursive references",
    "extends": "draft-3 extends", "disallow": "draft-3 disallow", "divisibleBy": "draft-3 divisibleBy",
}
# Of those, the ones that are relaxed rather than refused: draft 3's are no 2020-12 keywords, so the
# judge would not check them after decoding either.
RELAXABLE = frozenset(REFUSED) - {"extends", "disallow", "divisibleBy"}
MAX_UNIQUE_ARRAYS = 512  # uniqueItems over a finite item set: at most this many arrays, as an enum
OBJECT_KEYS = ("properties", "patternProperties", "required", "additionalProperties", "minProperties",
               "maxProperties", "dependentRequired", "dependentSchemas")
ALL_TYPES = frozenset({"string", "integer", "number", "boolean", "null", "array", "object"})


@dataclass(frozen=True)
class Relaxation:
    """A keyword the grammar does not enforce in one subschema of a tool's parameters: every call of
    that tool is checked against the full schema after decoding instead."""

    tool: str
    path: str  # where the keyword stands, as in error messages: "parameters.properties.headers"
    keyword: str

    def __str__(self) -> str:
        return f"{self.tool}:{self.path}:{self.keyword}"

    def to_dict(self) -> dict[str, str]:
        return {"tool": self.tool, "path": self.path, "keyword": self.keyword}


def describe_relaxed(relaxed: "Sequence[Relaxation]") -> str:
    """The relaxations as one line, ``tool:path:keyword; ...`` (the CLI's warning, the server's header)."""
    return "; ".join(str(r) for r in relaxed)


def relaxed_warning(relaxed: "Sequence[Relaxation]") -> Optional[str]:
    """The CLI's one warning line about relaxed keywords; None when there are none."""
    if not relaxed:
        return None
    return ("ondevice: warning: the grammar does not enforce these keywords; each call is checked against "
            f"them after decoding (mark a tool strict: true to refuse them instead): {describe_relaxed(relaxed)}")


@lru_cache(maxsize=None)
def known_format(name: str) -> bool:
    """Whether llguidance enforces this `format` (asked once per name, by compiling it)."""
    grammar = LLMatcher.grammar_from_json_schema({"type": "string", "format": name})
    is_error, _ = LLMatcher.validate_grammar_with_warnings(grammar)
    return not is_error


@lru_cache(maxsize=4096)
def _string_compiles(pattern: str, lengths: tuple[tuple[str, Any], ...]) -> bool:
    """Whether llguidance compiles a string schema of this pattern and these length bounds."""
    try:
        grammar = LLMatcher.grammar_from_json_schema({"type": "string", "pattern": pattern, **dict(lengths)})
        is_error, _ = LLMatcher.validate_grammar_with_warnings(grammar)
    except Exception:  # a pattern llguidance's reader rejects outright
        return False
    return not is_error


def enforceable(schema: dict[str, Any], tool: str, relaxed: Optional[list[Relaxation]] = None) -> dict[str, Any]:
    """The schema the grammar enforces for a tool's parameters (JSON Schema 2020-12): a subset of
    `schema`, except at the keywords appended to `relaxed` (when given; else they are refused)."""
    enforce = _Enforce(schema, tool, relaxed)
    out = enforce.schema(schema, "parameters")
    if enforce.moved:  # refs to other places than $defs, moved into $defs
        out["$defs"] = {**out.get("$defs", {}), **enforce.moved}
    return out


class _Enforce:
    def __init__(self, root: dict[str, Any], tool: str, relaxed: Optional[list[Relaxation]] = None):
        self.root = root
        self.tool = tool
        self.relaxed = relaxed  # None: refuse what cannot be enforced
        self.moved: dict[str, Any] = {}
        # defs that an allOf combines with other schemas: closing them would forbid the others' keys
        self.open_refs: set[str] = set()
        self.collect_open_refs(root, False)

    def collect_open_refs(self, node: Any, conjunct: bool) -> None:
        if isinstance(node, list):
            for item in node:
                self.collect_open_refs(item, conjunct)
            return
        if not isinstance(node, dict):
            return
        ref = node.get("$ref")
        if conjunct and isinstance(ref, str) and ref not in self.open_refs:
            self.open_refs.add(ref)
            self.collect_open_refs(self.deref(node), True)
        for key, value in node.items():
            if key == "allOf":
                self.collect_open_refs(value, True)
            elif key in ("anyOf", "oneOf"):
                self.collect_open_refs(value, conjunct)
            elif isinstance(value, (dict, list)) and key not in ("enum", "const", "default", "examples"):
                self.collect_open_refs(value, False)

    def ref(self, value: str, path: str) -> str:
        """A local ref as the grammar schema holds it: one into $defs, definitions or properties is
        kept; one to any other place is pointed at a copy of its target moved into $defs."""
        if value == "#" or value.startswith(("#/$defs/", "#/definitions/", "#/properties/")):
            return value
        target = self.deref({"$ref": value})
        if not value.startswith("#/") or target == {} and value != "#/":
            raise self.fail(path, "$ref", f"only local refs ('#/$defs/NAME', '#/definitions/NAME', any '#/...' "
                            f"pointer into the parameters) are supported, got {value!r}")
        name = "ref_" + value[2:].replace("/", "_")
        if name not in self.moved:
            self.moved[name] = {}  # registered first: a target that refers to itself ends here
            self.moved[name] = self.schema(target, f"{path}.$ref", closable=value not in self.open_refs)
        return f"#/$defs/{name}"

    def fail(self, path: str, keyword: str, message: str) -> ToolSchemaError:
        return ToolSchemaError(f"tool {self.tool!r}, at {path}: unsupported JSON Schema keyword {keyword!r}: {message}")

    def relax(self, path: str, keyword: str, message: str) -> None:
        """Leave `keyword` at `path` to the check after decoding (recorded), or refuse it."""
        if self.relaxed is None:
            raise self.fail(path, keyword, message)
        relaxation = Relaxation(self.tool, path, keyword)
        if relaxation not in self.relaxed:
            self.relaxed.append(relaxation)

    # --- one schema ---------------------------------------------------------------------------------
    def schema(self, node: Any, path: str, closable: bool = True) -> Any:
        if isinstance(node, bool):
            return node
        node = dict(node)
        out: dict[str, Any] = {}
        extra: list[Any] = []  # conjuncts, added as allOf
        if "oneOf" in node or "anyOf" in node:
            node = self.distribute(node, path)
        for key, value in node.items():
            if key in ANNOTATIONS or key in ("dependentRequired", "dependentSchemas", "uniqueItems", "if", "then", "else"):
                continue
            if key in ("propertyNames", "not"):
                continue  # rewritten below where exactly possible, else relaxed
            if key in REFUSED:
                message = f"the grammar cannot enforce {REFUSED[key]}; remove it"
                if key not in RELAXABLE:
                    raise self.fail(path, key, message)
                self.relax(path, key, message)
                continue
            if key == "format":
                if isinstance(value, str) and known_format(value):
                    out[key] = value
            elif key == "$ref":
                if not isinstance(value, str):
                    raise self.fail(path, key, f"expected a string, got {value!r}")
                out[key] = self.ref(value, path)
            elif key in PASSED:
                out[key] = value
            elif key in ("properties", "patternProperties"):
                out[key] = {k: self.schema(v, f"{path}.{key}.{k}") for k, v in value.items()}
            elif key in ("$defs", "definitions"):
                out[key] = {k: self.schema(v, f"{path}.{key}.{k}", f"#/{key}/{k}" not in self.open_refs)
                            for k, v in value.items()}
            elif key in ("additionalProperties", "items"):
                out[key] = self.schema(value, f"{path}.{key}")
            elif key == "prefixItems":
                out[key] = [self.schema(v, f"{path}.prefixItems[{i}]") for i, v in enumerate(value)]
            elif key == "allOf":
                out[key] = [self.schema(v, f"{path}.allOf[{i}]", closable=False) for i, v in enumerate(value)]
            elif key == "anyOf":
                out[key] = [self.schema(v, f"{path}.anyOf[{i}]", closable) for i, v in enumerate(value)]
            elif key == "oneOf":
                out["anyOf"] = self.exclusive(value, path, closable)
            # anything else is no JSON Schema keyword: an annotation
        if isinstance(out.get("pattern"), str):
            self.bound_pattern(out, path)
        extra += self.dependencies(node, path)
        extra += self.conditional(node, path)
        if "propertyNames" in node:
            self.property_names(node["propertyNames"], out, path)
        if "not" in node:
            extra += self.negation(node["not"], path)
        if node.get("uniqueItems") is True:
            self.unique(node, out, path)
        if extra:
            out["allOf"] = out.get("allOf", []) + extra
        if closable:
            self.close(node, out)
        return out

    def bound_pattern(self, out: dict[str, Any], path: str) -> None:
        """A `pattern` llguidance cannot compile with the string's length bounds (it intersects the two
        regexes within a budget: a hostname pattern under maxLength 253 exceeds it) keeps the pattern
        and relaxes the bounds; a pattern it cannot compile at all (lookarounds, ...) is relaxed."""
        lengths = tuple(sorted((k, out[k]) for k in ("minLength", "maxLength") if k in out))
        if _string_compiles(out["pattern"], lengths):
            return
        if lengths and _string_compiles(out["pattern"], ()):
            for key, _ in lengths:
                self.relax(path, key, f"the grammar compiler cannot bound this pattern's strings by {key}; "
                                      f"remove {key}, or simplify the pattern")
                del out[key]
            return
        self.relax(path, "pattern", "the grammar compiler cannot compile this regular expression; simplify it")
        del out["pattern"]

    def close(self, node: dict[str, Any], out: dict[str, Any]) -> None:
        """Close an object the caller left open, over every key it declares, requires or gets from allOf."""
        if "properties" not in out or "additionalProperties" in node or "$ref" in out or "anyOf" in out:
            return
        keys = set(out["properties"]) | set(out.get("required", []))
        for member in out.get("allOf", []):
            keys |= self.declared_keys(member)
        for key in sorted(keys - set(out["properties"])):
            out["properties"][key] = {}
        out["additionalProperties"] = False

    def declared_keys(self, node: Any) -> set[str]:
        if not isinstance(node, dict):
            return set()
        keys = set(node.get("properties", {})) | set(node.get("required", []))
        for key in ("allOf", "anyOf"):
            for member in node.get(key, []):
                keys |= self.declared_keys(member)
        return keys

    # --- oneOf / anyOf --------------------------------------------------------------------------------
    def distribute(self, node: dict[str, Any], path: str) -> dict[str, Any]:
        """Move the object's own keywords into its oneOf (else anyOf) branches: ``{P, oneOf: [B]}`` is
        ``{oneOf: [P and B]}``, and each branch then compiles (and is closed) as one whole object."""
        key = "oneOf" if "oneOf" in node else "anyOf"
        own = {k: node[k] for k in OBJECT_KEYS if k in node}
        if not own:
            return node
        rest = {k: v for k, v in node.items() if k not in own}
        rest[key] = [self.merge(own, branch) for branch in node[key]]
        return rest

    @staticmethod
    def merge(own: dict[str, Any], branch: Any) -> Any:
        """``own and branch`` as one schema; an allOf where a plain merge could change the meaning."""
        if branch is True:
            return dict(own)
        # own's additionalProperties reads own's properties only: a plain merge keeps its meaning when
        # the branch declares no key own does not
        widens = "additionalProperties" in own and not set(branch.get("properties", {}) if isinstance(branch, dict) else ()) <= set(own.get("properties", {}))
        if (not isinstance(branch, dict) or "$ref" in branch or "additionalProperties" in branch or widens
                or "patternProperties" in own or "patternProperties" in branch
                or any(k in branch for k in ("oneOf", "anyOf"))):
            return {"allOf": [own, branch]}
        merged = dict(branch)
        for key, value in own.items():
            if key == "properties":
                props = dict(value)
                for name, sub in branch.get("properties", {}).items():
                    props[name] = sub if name not in props or props[name] == sub else {"allOf": [props[name], sub]}
                merged["properties"] = props
            elif key == "required":
                merged["required"] = list(dict.fromkeys(value + branch.get("required", [])))
            elif key in ("dependentRequired", "dependentSchemas"):
                merged[key] = {**branch.get(key, {}), **value} if not set(value) & set(branch.get(key, {})) else None
                if merged[key] is None:
                    return {"allOf": [own, branch]}
            elif key in branch and branch[key] != value:
                return {"allOf": [own, branch]}
            else:
                merged[key] = value
        return merged

    def exclusive(self, branches: list[Any], path: str, closable: bool) -> list[Any]:
        """oneOf as anyOf: each branch the grammar allows (tightened if needed) excludes every other."""
        exact = list(branches)
        enforced = [self.schema(b, f"{path}.oneOf[{i}]", closable) for i, b in enumerate(branches)]
        for i, j in itertools.permutations(range(len(branches)), 2):
            if self.excluded(enforced[i], exact[j]):
                continue
            key = self.forbiddable(enforced[i], exact[i], exact[j])
            if key is None:  # relaxed: the grammar allows either branch (anyOf), the check wants exactly one
                self.relax(path, "oneOf", f"branches {i} and {j} can both match one value, and the grammar enforces "
                           "only exclusive branches: tell them apart with a const discriminator property or "
                           "distinct required keys, or use anyOf")
                continue
            enforced[i] = self.forbid(enforced[i], key)
        return enforced

    def excluded(self, mine: Any, other: Any) -> bool:
        """No value valid under `mine` (as enforced) is valid under `other` (the caller's branch).

        Each test reads only a few keywords of each side (ignoring the rest only widens a side), so
        a True is a proof.
        """
        if other is False or mine is False:
            return True
        if not isinstance(mine, dict) or not isinstance(other, dict):
            return False
        mine, other = self.deref(mine), self.deref(other)
        if any(self.excluded(m, other) for m in mine.get("allOf", [])):
            return True  # mine is within each of its allOf members
        if any(self.excluded(mine, o) for o in other.get("allOf", [])):
            return True
        if not _types_overlap(_types(mine), _types(other)):
            return True
        values = _finite(mine)
        if values is not None and not any(self.valid(v, other) for v in values):
            return True
        if "object" not in _types(mine) or "object" not in _types(other):
            return False
        if any(self.forbids(mine, k) for k in other.get("required", [])):
            return True
        mine_props, other_props = mine.get("properties", {}), other.get("properties", {})
        for k in mine.get("required", []):
            if self.forbids(other, k):
                return True
            if k in mine_props and k in other_props and self.excluded(mine_props[k], other_props[k]):
                return True
        return False

    def forbiddable(self, mine: Any, mine_exact: Any, other: Any) -> Optional[str]:
        """A key `other` requires that `mine` may omit: forbidding it in `mine` excludes `other`."""
        if not isinstance(mine, dict) or not isinstance(other, dict) or not isinstance(mine_exact, dict):
            return None
        other = self.deref(other)
        if "object" not in _types(self.deref(mine)) or "object" not in _types(other):
            return None
        needed = set(self.deref(mine).get("required", [])) | set(mine_exact.get("required", []))
        return next((k for k in other.get("required", []) if k not in needed), None)

    @staticmethod
    def forbid(schema: dict[str, Any], key: str) -> dict[str, Any]:
        if "$ref" in schema or "allOf" in schema:
            return {"allOf": [schema, {"properties": {key: False}}]}
        out = dict(schema)
        props = dict(out.get("properties", {}))
        if out.get("additionalProperties") is False and "patternProperties" not in out:
            props.pop(key, None)
        else:
            props[key] = False
        out["properties"] = props
        return out

    def forbids(self, schema: dict[str, Any], key: str) -> bool:
        props = schema.get("properties", {})
        if key in props:
            return props[key] is False
        return schema.get("additionalProperties") is False and not schema.get("patternProperties")

    def deref(self, schema: Any, depth: int = 0) -> Any:
        """The schema a lone-ish $ref points to (its siblings dropped: that only widens it)."""
        if isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < 16:
            ref = schema["$ref"]
            target: Any = self.root
            for part in ref[2:].split("/") if ref.startswith("#/") else []:
                if not isinstance(target, dict) or part not in target:
                    return {}
                target = target[part]
            return self.deref(target, depth + 1)
        return schema

    def valid(self, value: Any, schema: Any) -> bool:
        if isinstance(schema, bool):
            return schema
        full = dict(schema)
        for key in ("$defs", "definitions"):
            if key in self.root:
                full.setdefault(key, self.root[key])
        return jsonschema.Draft202012Validator(full).is_valid(value)

    # --- key schemas and negation -------------------------------------------------------------------
    def property_names(self, names: Any, out: dict[str, Any], path: str) -> None:
        """propertyNames as key constraints where that is exact: listed names (enum/const) become the
        object's only keys; one pattern on an object with no declared keys becomes patternProperties
        (closed); a schema every string satisfies is dropped. Otherwise relaxed."""
        core = {k: v for k, v in names.items() if k not in ANNOTATIONS} if isinstance(names, dict) else names
        if isinstance(core, dict) and core.get("type", "string") == "string":
            core.pop("type", None)
        if core is True or core == {}:
            return  # every key is a string
        message = ("the grammar enforces key schemas only as listed names (enum, const) or one pattern on an "
                   "object with no declared properties; remove it")
        extra = out.get("additionalProperties", True)
        if isinstance(core, dict) and set(core) in ({"enum"}, {"const"}) and "patternProperties" not in out:
            allowed = core["enum"] if "enum" in core else [core["const"]]
            if not all(isinstance(n, str) for n in allowed):
                return self.relax(path, "propertyNames", message)
            props = out.get("properties", {})
            keys = {n: props.get(n, extra) for n in allowed if n in props or extra is not False}
            out["properties"], out["additionalProperties"] = keys, False
        elif (isinstance(core, dict) and set(core) == {"pattern"} and isinstance(core["pattern"], str)
              and not out.get("properties") and "patternProperties" not in out):
            if extra is not False:
                out["patternProperties"] = {core["pattern"]: extra if isinstance(extra, dict) else {}}
            out.pop("properties", None)
            out["additionalProperties"] = False
        else:
            self.relax(path, "propertyNames", message)

    def negation(self, negated: Any, path: str) -> list[Any]:
        """``not: {"required": [key]}`` (one key) forbids that key exactly; any other `not` is relaxed."""
        core = {k: v for k, v in negated.items() if k not in ANNOTATIONS} if isinstance(negated, dict) else None
        if core is not None and set(core) == {"required"} and len(core["required"]) == 1:
            return [{"properties": {core["required"][0]: False}}]
        self.relax(path, "not", "the grammar cannot enforce negation (only not: {\"required\": [one key]}); remove it")
        return []

    # --- rewrites into anyOf ------------------------------------------------------------------------
    def dependencies(self, node: dict[str, Any], path: str) -> list[Any]:
        """dependentRequired / dependentSchemas as anyOfs: the key absent, or it and what it needs."""
        conjuncts = []
        for key, needed in node.get("dependentRequired", {}).items():
            conjuncts.append({"anyOf": [{"properties": {key: False}},
                                        {"required": list(dict.fromkeys([key, *needed]))}]})
        for key, sub in node.get("dependentSchemas", {}).items():
            enforced = self.schema(sub, f"{path}.dependentSchemas.{key}", closable=False)
            conjuncts.append({"anyOf": [{"properties": {key: False}}, {"allOf": [{"required": [key]}, enforced]}]})
        return conjuncts

    def conditional(self, node: dict[str, Any], path: str) -> list[Any]:
        """if/then/else as ``anyOf[if and then, (not if) and else]``, when `not if` is expressible:
        the condition tests one property against const/enum values, and that property's own values
        are a finite set (an enum, a const or a boolean)."""
        if "if" not in node:
            return []
        cond = node["if"]
        then, other = node.get("then", True), node.get("else", True)
        negation = self.negate(cond, node)
        if negation is None:
            self.relax(path, "if", "the grammar can enforce if/then/else only when 'if' tests one property "
                       "against const/enum values drawn from that property's own finite set (an enum); "
                       "rewrite it as anyOf")
            return []
        return [{"anyOf": [
            {"allOf": [self.schema(cond, f"{path}.if", False), self.schema(then, f"{path}.then", False)]},
            {"allOf": [negation, self.schema(other, f"{path}.else", False)]},
        ]}]

    def negate(self, cond: Any, node: dict[str, Any]) -> Optional[dict[str, Any]]:
        if not isinstance(cond, dict) or set(cond) - {"properties", "required", "type"} or cond.get("type", "object") != "object":
            return None
        props = cond.get("properties", {})
        if len(props) != 1:
            return None
        (key, test), = props.items()
        allowed = _finite(test) if isinstance(test, dict) and set(test) <= {"const", "enum", "type"} else None
        domain = _finite(self.deref(node.get("properties", {}).get(key, {})))
        if allowed is None or domain is None:
            return None
        rest = [v for v in domain if not any(_same(v, a) for a in allowed)]
        present = {"properties": {key: {"enum": rest}}, "required": [key]} if rest else False
        if key in cond.get("required", []):
            absent = {"properties": {key: False}}
            return {"anyOf": [absent, present]} if present is not False else absent
        return present if present is not False else {"properties": {key: False}, "required": [key]}

    def unique(self, node: dict[str, Any], out: dict[str, Any], path: str) -> None:
        """uniqueItems: nothing to do for at most one item; an enum of arrays for a small finite item set."""
        if node.get("maxItems", 2) <= 1:
            return
        items = self.deref(node.get("items", {}))
        values = _finite(items) if isinstance(items, dict) and "prefixItems" not in node else None
        low, high = node.get("minItems", 0), node.get("maxItems", len(values or []))
        arrays: list[list[Any]] = []
        if values is not None:
            distinct = [v for i, v in enumerate(values) if not any(_same(v, w) for w in values[:i])]
            distinct = [v for v in distinct if self.valid(v, items)]
            for n in range(low, min(high, len(distinct)) + 1):
                arrays.extend(list(p) for p in itertools.permutations(distinct, n))
                if len(arrays) > MAX_UNIQUE_ARRAYS:
                    break
        if values is None or len(arrays) > MAX_UNIQUE_ARRAYS:
            self.relax(path, "uniqueItems", "the grammar can enforce unique items only over a small finite "
                       f"item set (an enum, at most {MAX_UNIQUE_ARRAYS} arrays) or with maxItems 1; "
                       "remove it or list the allowed values")
            return
        out["enum"] = [a for a in (out.get("enum") or arrays) if self.valid(a, node)]
        if not out["enum"]:
            raise self.fail(path, "uniqueItems", "no array of distinct items satisfies this schema")


def _types(schema: Any) -> frozenset[str]:
    if not isinstance(schema, dict):
        return ALL_TYPES
    values = _finite(schema)
    if values is not None:
        return frozenset(t for v in values for t in _type_of(v))
    declared = schema.get("type")
    if declared is None:
        return ALL_TYPES
    return frozenset([declared] if isinstance(declared, str) else declared)


def _type_of(value: Any) -> tuple[str, ...]:
    if value is None:
        return ("null",)
    if isinstance(value, bool):
        return ("boolean",)
    if isinstance(value, (int, float)):
        return ("integer", "number") if float(value).is_integer() else ("number",)
    return {str: ("string",), list: ("array",), dict: ("object",)}.get(type(value), ())


def _types_overlap(a: frozenset[str], b: frozenset[str]) -> bool:
    widen = lambda s: s | ({"number"} if "integer" in s else set()) | ({"integer"} if "number" in s else set())
    return bool(widen(set(a)) & widen(set(b)))


def _finite(schema: Any) -> Optional[list[Any]]:
    """The schema's values when they are a finite set written out (const, enum, boolean, null)."""
    if not isinstance(schema, dict):
        return None
    if "const" in schema:
        return [schema["const"]]
    if isinstance(schema.get("enum"), list):
        return list(schema["enum"])
    if schema.get("type") == "boolean":
        return [False, True]
    if schema.get("type") == "null":
        return [None]
    return None


def _same(a: Any, b: Any) -> bool:
    """JSON equality (1 == 1.0, but True != 1)."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) if type(a) is not type(b) and (
        isinstance(a, bool) or isinstance(b, bool)) else a == b


__all__ = ["enforceable", "known_format", "Relaxation", "describe_relaxed", "relaxed_warning", "ANNOTATIONS", "REFUSED", "RELAXABLE"]
