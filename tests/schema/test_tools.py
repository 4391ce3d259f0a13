"""Tool validation and the rewrite of every accepted dialect to standard JSON Schema."""

from __future__ import annotations

import jsonschema
import pytest

from ondevice.errors import ToolSchemaError
from ondevice.formats.grammar import compile_grammar, tool_call_lark
from ondevice.schema.tools import normalize_tools, to_json_schema

from ..common import EXAMPLE_NAMES, load_example

pytestmark = pytest.mark.nomodel


def tool(params, name="t"):
    return {"name": name, "description": "d", "parameters": params}


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_card_example_compiles(name):
    tools, _ = load_example(name)
    normalized = normalize_tools(tools)
    assert [t.name for t in normalized] == [(t.get("function") or t)["name"] for t in tools]
    assert compile_grammar(normalized)


def test_openai_style_is_unwrapped():
    tools, _ = load_example("wrong_tool")
    (t,) = normalize_tools(tools)
    assert t.name == "cut_number" and t.grammar_schema["properties"]["number"] == {"type": "number"}


def test_bfcl_dialect_becomes_standard_json_schema():
    schema = to_json_schema({
        "type": "dict",
        "properties": {
            "ratio": {"type": "float"},
            "point": {"type": "tuple", "items": {"type": "integer"}},
            "payload": {"type": "any"},
            "nested": {"type": "dict", "properties": {"k": {"type": "string", "optional": True}}, "required": ["k"]},
            "note": {"type": "string", "optional": True, "default": "x"},
        },
        "required": ["ratio", "point", "payload", "note"],
    })
    assert schema["type"] == "object"
    assert schema["properties"]["ratio"] == {"type": "number"}
    assert schema["properties"]["point"] == {"type": "array", "items": {"type": "integer"}}
    assert schema["properties"]["payload"] == {}
    assert schema["properties"]["nested"]["required"] == []
    assert schema["required"] == ["ratio", "point", "payload"]  # "optional" wins over "required"
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate({"ratio": 1.5, "point": [1, 2], "payload": [None]}, schema)


def enforced(params):
    return normalize_tools([tool(params)])[0].grammar_schema


def test_arguments_are_closed_unless_the_schema_opens_them():
    closed = enforced({"type": "object", "properties": {"a": {"type": "string"}}, "required": ["b"]})
    assert closed["additionalProperties"] is False and set(closed["properties"]) == {"a", "b"}
    assert "additionalProperties" not in to_json_schema({"type": "object", "properties": {"a": {}}})  # the judge is the caller's
    free = enforced({"type": "object"})
    assert "additionalProperties" not in free  # a free-form object stays free-form
    opened = enforced({"type": "object", "properties": {}, "additionalProperties": {"type": "integer"}})
    assert opened["additionalProperties"] == {"type": "integer"}


def test_local_refs_are_hoisted_into_the_call_schema():
    (t,) = normalize_tools([tool({
        "type": "object",
        "$defs": {"loc": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}},
        "properties": {"where": {"$ref": "#/$defs/loc"}},
        "required": ["where"],
    })])
    call = t.call_schema()
    assert "$defs" in call and "$defs" not in call["properties"]["arguments"]
    jsonschema.validate({"name": "t", "arguments": {"where": {"city": "Oslo"}}}, call)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"name": "t", "arguments": {"where": {}}}, call)
    assert compile_grammar([t])


def test_no_tools_grammar_is_the_empty_list_only():
    assert tool_call_lark([]) == 'start: calls\ncalls: "<tool_call>" "[]" "</tool_call>"\n'


@pytest.mark.parametrize("tools, message", [
    ([{"description": "no name", "parameters": {"type": "object"}}], "missing 'name'"),
    ([{"name": "", "parameters": {}}], "missing 'name'"),
    ([tool({"type": "object"}, "a"), tool({"type": "object"}, "a")], "duplicate name 'a'"),
    ([tool([1, 2])], "expected 'parameters' to be a JSON Schema object, got list"),
    ([tool({"type": "string"})], "expected 'parameters' to have type 'object'"),
    ([{**tool({"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}), "strict": True}],
     "tool 't', at parameters.properties.xs: unsupported JSON Schema keyword 'uniqueItems'"),
    ([tool({"type": "object", "properties": {"x": {"type": "string", "pattern": "("}}})], "not a valid JSON Schema"),
    ([{**tool({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}), "strict": True}],
     "unsupported JSON Schema keyword 'not'"),
    ([tool({"type": "object", "properties": {"x": {"type": "strnig"}}})], "unknown type 'strnig'"),
    ([tool({"type": "object", "properties": {"x": {"$ref": "https://example.com/s.json"}}})], "'$ref': only local refs"),
    ([tool({"type": "object", "properties": {"x": {"enum": []}}})], "'enum' is empty"),
    ({"name": "t"}, "got a single object"),
    ("get_weather", "expected the tools to be a JSON array"),
    (["get_weather"], "tool #0: expected a JSON object, got str"),
])
def test_malformed_tools_get_a_clear_error(tools, message):
    with pytest.raises(ToolSchemaError) as info:
        normalize_tools(tools)
    assert message in str(info.value)


def test_formats_llguidance_knows_are_enforced_and_others_are_annotations():
    schema = enforced({"type": "object", "properties": {"when": {"type": "string", "format": "date-time"},
                                                        "ref": {"type": "string", "format": "uri-reference"}}})
    assert schema["properties"]["when"] == {"type": "string", "format": "date-time"}
    assert schema["properties"]["ref"] == {"type": "string"}


def test_bfcl_enum_on_an_array_means_the_items_enum():
    # As in BFCL's live_simple_71-35-0: a scalar enum written on the array itself.
    schema = to_json_schema({"type": "dict", "properties": {
        "days": {"type": "array", "items": {"type": "string"}, "enum": ["mon", "tue"]},
        "pairs": {"type": "array", "enum": [[1, 2], [3]]},  # an enum of arrays is standard: kept
    }})
    assert schema["properties"]["days"] == {"type": "array", "items": {"type": "string", "enum": ["mon", "tue"]}}
    assert schema["properties"]["pairs"]["enum"] == [[1, 2], [3]]
    jsonschema.validate({"days": ["tue", "mon"]}, schema)
    (t,) = normalize_tools([tool({"type": "dict", "properties": {"days": {"type": "array", "enum": ["mon"]}}})])
    assert compile_grammar([t])
