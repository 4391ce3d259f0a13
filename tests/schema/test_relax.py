"""Relaxing one keyword instead of refusing the request: what the grammar cannot enforce is dropped
for that subschema only, recorded (tool, path, keyword), and checked after decoding; `strict: true`
keeps the refusal; a few keywords are rewritten exactly instead (docs/schemas.md)."""

from __future__ import annotations

import jsonschema
import pytest

from ondevice.errors import ToolSchemaError
from ondevice.formats.grammar import compile_grammar
from ondevice.schema.tools import normalize_tools

pytestmark = pytest.mark.nomodel


def tool(params, name="t", **extra):
    return {"name": name, "description": "d", "parameters": params, **extra}


# One tool of a toolset puts propertyNames on a free-form object (as MCP servers' record types do).
HEADERS = {"type": "object", "properties": {
    "url": {"type": "string"},
    "headers": {"type": "object", "additionalProperties": {"type": "string"},
                "propertyNames": {"minLength": 1, "pattern": "^x_"}},
}, "required": ["url"]}
TOOLSET = [tool({"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}, "search"),
           tool(HEADERS, "fetch"),
           {"type": "function", "function": {"name": "click", "description": "d", "parameters": {
               "type": "object", "properties": {"ref": {"type": "string"}}, "required": ["ref"]}}}]


def relaxed_of(tools):
    return [(r.tool, r.path, r.keyword) for t in normalize_tools(tools) for r in t.relaxed]


def test_one_unenforceable_keyword_relaxes_that_keyword_not_the_toolset():
    normalized = normalize_tools(TOOLSET)
    assert [t.name for t in normalized] == ["search", "fetch", "click"]
    assert relaxed_of(TOOLSET) == [("fetch", "parameters.properties.headers", "propertyNames")]
    headers = normalized[1].grammar_schema["properties"]["headers"]
    assert "propertyNames" not in headers and headers["additionalProperties"] == {"type": "string"}  # the rest stays
    assert "propertyNames" in normalized[1].parameters["properties"]["headers"]  # the judge keeps it
    assert str(normalized[1].relaxed[0]) == "fetch:parameters.properties.headers:propertyNames"
    assert compile_grammar(normalized)


@pytest.mark.parametrize("spelling", ["function", "flat"])
def test_strict_tools_keep_the_refusal(spelling):
    body = {"name": "fetch", "description": "d", "parameters": HEADERS, "strict": True}
    strict = {"type": "function", "function": body} if spelling == "function" else {"type": "function", **body}
    with pytest.raises(ToolSchemaError, match=r"tool 'fetch', at parameters.properties.headers: unsupported JSON "
                                              r"Schema keyword 'propertyNames'.*strict"):
        normalize_tools([TOOLSET[0], strict])


@pytest.mark.parametrize("params, keyword, where", [
    ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "not", "parameters.properties.x"),
    ({"type": "object", "properties": {"xs": {"type": "array", "contains": {"const": 1}}}}, "contains",
     "parameters.properties.xs"),
    ({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}},
     "uniqueItems", "parameters.properties.xs"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "if": {"properties": {"a": {"const": "x"}}},
      "then": {"required": ["a"]}}, "if", "parameters"),
    ({"type": "object", "properties": {"x": {"oneOf": [{"type": "integer"}, {"type": "number"}]}}}, "oneOf",
     "parameters.properties.x"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "unevaluatedProperties": False},
     "unevaluatedProperties", "parameters"),
])
def test_each_unenforceable_keyword_is_relaxed_where_it_stands(params, keyword, where):
    assert relaxed_of([tool(params)]) == [("t", where, keyword)]
    with pytest.raises(ToolSchemaError, match=rf"tool 't', at {where}: .*'{keyword}'"):
        normalize_tools([tool(params, strict=True)])


@pytest.mark.parametrize("params", [
    {"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}},  # never fetched
    {"type": "object", "properties": {"x": {"extends": {"type": "string"}}}},  # draft 3: the judge ignores it
])
def test_what_cannot_be_checked_after_decoding_is_still_refused(params):
    with pytest.raises(ToolSchemaError):
        normalize_tools([tool(params)])


@pytest.mark.parametrize("names, good, bad", [
    ({"type": "string"}, {"anything": 1}, None),  # every key is a string: nothing to enforce
    ({"enum": ["a", "b"]}, {"a": 1, "b": 2}, {"c": 1}),
    ({"const": "a"}, {"a": 1}, {"b": 1}),
    ({"pattern": "^x_"}, {"x_1": 1}, {"y": 1}),
])
def test_property_names_rewritten_exactly(names, good, bad):
    params = {"type": "object", "properties": {"m": {"type": "object", "propertyNames": names}}}
    (t,) = normalize_tools([tool(params)])
    assert t.relaxed == ()  # enforced, not relaxed
    m = t.grammar_schema["properties"]["m"]
    assert "propertyNames" not in m
    jsonschema.validate(good, m)
    jsonschema.validate(good, t.parameters["properties"]["m"])
    if bad is not None:
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, m)
    assert compile_grammar([t])


def test_not_required_one_key_is_rewritten_exactly():
    params = {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
              "anyOf": [{"required": ["a"]}, {"not": {"required": ["b"]}}]}
    (t,) = normalize_tools([tool(params)])
    assert t.relaxed == ()
    assert compile_grammar([t])


@pytest.mark.parametrize("params, good", [
    ({"type": "object", "properties": {"flag": {"type": ["boolean", "string"]}}}, {"flag": "yes"}),
    ({"type": "object", "properties": {"opts": {"type": ["object", "null"]}}}, {"opts": None}),
    ({"type": "object", "properties": {"n": {"type": "integer", "format": "int32"}}}, {"n": 7}),
])
def test_type_arrays_and_unknown_formats_need_no_relaxation(params, good):
    (t,) = normalize_tools([tool(params)])
    assert t.relaxed == ()
    jsonschema.validate(good, t.parameters)
    jsonschema.validate(good, t.grammar_schema)
    assert compile_grammar([t])


# Firecrawl's search tool (firecrawl-mcp 3.26.0): a hostname pattern with a length bound, which
# llguidance cannot intersect within its compile budget ("Unable to determine if regex is empty").
HOSTNAME = r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$"
SITES = {"type": "object", "properties": {
    "query": {"type": "string"},
    "site": {"type": "string", "pattern": HOSTNAME, "maxLength": 253},
}, "required": ["query"]}


def test_a_pattern_the_grammar_cannot_bound_relaxes_the_length_not_the_toolset():
    tools = [tool(SITES, "search"), tool({"type": "object", "properties": {"url": {"type": "string"}}}, "scrape")]
    assert relaxed_of(tools) == [("search", "parameters.properties.site", "maxLength")]
    compile_grammar(normalize_tools(tools))  # the whole toolset compiles
    site = normalize_tools(tools)[0].grammar_schema["properties"]["site"]
    assert site["pattern"] == HOSTNAME and "maxLength" not in site  # the pattern stays enforced
    with pytest.raises(ToolSchemaError, match="maxLength"):
        normalize_tools([tool(SITES, "search", strict=True)])
