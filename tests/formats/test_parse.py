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


@pytest.mark.parametrize("name, text", [
    ("card", '<tool_call>[{"name": "a", "arguments": {"x": 1.50, "s": "\\u00e9"}}, {"name": "b", "arguments": {}}]</tool_call>'),
    ("native", '<tool_call>\n{"name": "a", "arguments": {"x": 1.50, "s": "\\u00e9"}}\n</tool_call>\n'
               '<tool_call>\n{"name": "b", "arguments": {}}\n</tool_call>'),
    ("xlam", '[{"name": "a", "arguments": {"x": 1.50, "s": "\\u00e9"}}, {"name": "b", "arguments": {}}]'),
    ("llama3", '{"name": "a", "parameters": {"x": 1.50, "s": "\\u00e9"}}'),
])
def test_an_answers_calls_keep_their_arguments_as_the_model_wrote_them(name, text):
    """What an API returns as function.arguments is the model's own text (as its stream was), not a
    re-serialization (1.50 stays 1.50, an escape stays an escape)."""
    from ondevice.engine.engine import with_written_arguments
    from ondevice.formats import get_format

    fmt = get_format(name)
    calls = with_written_arguments(fmt.parse(text), text, fmt)
    assert calls[0].arguments == {"x": 1.5, "s": "é"}
    assert calls[0].written_arguments() == '{"x": 1.50, "s": "\\u00e9"}'
    assert all(c.written_arguments() == "{}" for c in calls[1:])
    assert ToolCall("a", {"x": 1.5}).written_arguments() == '{"x": 1.5}'  # a call from elsewhere: serialized
