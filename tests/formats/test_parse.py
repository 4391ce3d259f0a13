"""The parse layer keeps the card's contract and never raises."""

from __future__ import annotations

import pytest

from ondevice.formats.blocks import ToolCall, parse_response, parse_tool_calls

pytestmark = pytest.mark.nomodel


def test_card_contract_list_or_text():
    text = '<tool_call>[{"name": "get_weather", "arguments": {"location": "New York", "unit": "fahrenheit"}}]</tool_call>'
    assert parse_response(text) == [{"name": "get_weather", "arguments": {"location": "New York", "unit": "fahrenheit"}}]
    refusal = "The query cannot be answered, no tools were provided."
    assert parse_response(refusal) == refusal


def test_multiline_block_as_in_the_system_prompt():
    text = '<tool_call>[\n{"name": "a", "arguments": {}},\n{"name": "b", "arguments": {"x": 1}}\n]</tool_call>'
    assert parse_tool_calls(text) == [ToolCall("a", {}), ToolCall("b", {"x": 1})]


@pytest.mark.parametrize("text", [
    "<tool_call>[{'name': 'x'}]</tool_call>",  # Python repr, not JSON
    "<tool_call>[{\"name\": \"x\", \"arguments\": {</tool_call>",
    "<tool_call>[",
    "",
    "<tool_call></tool_call>",
])
def test_malformed_text_never_raises(text):
    assert parse_response(text) == text
    assert parse_tool_calls(text) is None


@pytest.mark.parametrize("text", [
    '<tool_call>{"name": "x", "arguments": {}}</tool_call>',  # an object, not a list
    '<tool_call>[{"arguments": {}}]</tool_call>',
    '<tool_call>[{"name": "x", "arguments": [1]}]</tool_call>',
    '<tool_call>[1, 2]</tool_call>',
])
def test_well_formed_json_of_the_wrong_shape_is_not_calls(text):
    assert parse_tool_calls(text) is None
