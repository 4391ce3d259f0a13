"""Structured outputs: the response schema goes through the tool-schema code (same refusals, named for the
response format), the grammar admits only a valid JSON value, and `generate_json` returns it validated."""

from __future__ import annotations

import json
import subprocess
import sys

import jsonschema
import pytest
from llguidance import LLMatcher
from pydantic import BaseModel

from ondevice import Settings
from ondevice.errors import BudgetError
from ondevice.formats.grammar import compile_grammar, tool_call_lark
from ondevice.grammar.calls import CallOptions
from ondevice.server.responses import input_messages, parse_responses_request
from ondevice.structured import OutputSchemaError, content_format

TRIP = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30},
                                         "days": {"type": "integer", "minimum": 1, "maximum": 9}},
        "required": ["city", "days"]}


def accepts(caller, lark: str, text: str) -> bool:
    matcher = LLMatcher(caller.lltokenizer(), LLMatcher.grammar_from_lark(lark), log_level=0)
    return bool(matcher.consume_tokens(caller.model.tokenize(text, special=False))) and matcher.is_accepting()


@pytest.mark.nomodel
def test_refusals_name_the_response_format_and_the_keyword():
    with pytest.raises(OutputSchemaError, match=r"response format 'trip', at schema\.properties\.x: unsupported JSON "
                                                r"Schema keyword 'not'"):
        content_format({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "trip")
    with pytest.raises(OutputSchemaError, match=r"response format 'trip', at schema\.items: \$ref '#/\$defs/nope' "
                                                r"points to nothing: the schema has no '\$defs'"):
        content_format({"type": "array", "items": {"$ref": "#/$defs/nope"}}, "trip")
    with pytest.raises(OutputSchemaError, match="expected the schema to be a JSON Schema object"):
        content_format(["type", "object"], "trip")


def test_the_grammar_admits_only_a_valid_value_or_calls(caller):
    fmt = content_format(TRIP, "trip")
    assert json.loads(fmt.enforced)["additionalProperties"] is False  # closed, as tool parameters are
    alone = tool_call_lark([], CallOptions(content=fmt))
    assert accepts(caller, alone, '{"city": "Rome", "days": 3}')
    assert not accepts(caller, alone, '{"city": "Rome", "days": 12}')
    assert not accepts(caller, alone, '{"city": "Rome"}')
    assert not accepts(caller, alone, '<tool_call>[]</tool_call>')
    compile_grammar([], None, CallOptions(content=fmt))

    from ondevice.schema.tools import normalize_tools
    tools = normalize_tools([{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "integer"}}}}])
    either = tool_call_lark(tools, CallOptions(content=fmt))
    assert accepts(caller, either, '{"city": "Rome", "days": 3}')
    assert accepts(caller, either, '<tool_call>[{"name": "f", "arguments": {"a": 1}}]</tool_call>')
    assert not accepts(caller, either, "a sentence")
    required = tool_call_lark(tools, CallOptions(content=fmt, min_calls=1))  # tool_choice required: calls only
    assert not accepts(caller, required, '{"city": "Rome", "days": 3}')
    native = tool_call_lark(tools, CallOptions(content=fmt, tool_format="native"))
    assert accepts(caller, native, '{"city": "Rome", "days": 3}') and not accepts(caller, native, "")


@pytest.mark.nomodel
def test_responses_input_items_become_chat_messages():
    items = [{"role": "user", "content": [{"type": "input_text", "text": "weather?"}]},
             {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"location": "Paris"}'},
             {"type": "function_call", "call_id": "c2", "name": "get_weather", "arguments": '{"location": "Rome"}'},
             {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
             {"type": "function_call_output", "call_id": "c2", "output": "rainy"}]
    messages = input_messages(items, "Be brief.")
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "tool", "tool"]
    assert [c["id"] for c in messages[2]["tool_calls"]] == ["c1", "c2"]
    request = parse_responses_request({"model": "m", "input": items, "max_output_tokens": 7,
                                       "tools": [{"type": "function", "name": "get_weather",
                                                  "parameters": {"type": "object", "properties": {}}}],
                                       "tool_choice": {"type": "function", "name": "get_weather"},
                                       "text": {"format": {"type": "json_schema", "name": "t", "schema": TRIP}}},
                                      "m", Settings())
    chat = request.chat
    assert chat.settings.max_tokens == 7 and chat.options.allowed == ("get_weather",) and chat.options.min_calls == 1
    assert chat.content is not None and chat.content.name == "t"


def test_generate_json_returns_the_validated_value(caller):
    value = caller.generate_json("Plan 3 days in Rome.", TRIP, Settings(max_tokens=60))
    jsonschema.validate(value, TRIP)

    class Trip(BaseModel):
        city: str
        days: int

    trip = caller.generate_json([{"role": "system", "content": "You plan trips."},
                                 {"role": "user", "content": "Plan 3 days in Rome."}], Trip, Settings(max_tokens=60))
    assert isinstance(trip, Trip)
    with pytest.raises(BudgetError, match="raise max_tokens"):
        caller.generate_json("Many names.", {"type": "array", "items": {"type": "string"}, "minItems": 20},
                             Settings(max_tokens=6))


@pytest.mark.nomodel
def test_cli_json_refuses_an_unenforceable_schema_before_loading(tmp_path):
    schema = tmp_path / "s.json"
    schema.write_text(json.dumps({"type": "object", "properties": {"x": {"contains": {}}}}))
    run = subprocess.run([sys.executable, "-m", "ondevice", "json", "hi", "--schema", str(schema)], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 2
    assert "unsupported JSON Schema keyword 'contains'" in run.stderr and "at schema.properties.x" in run.stderr
