"""The model decides when to stop calling: a call made twice in a row is refused, a call whose result
the conversation already holds is refused (the model answers in text instead, or with another tool's
call where one is required, or with the response format's JSON value), and at a call
boundary the model's own choice ends the list. On Qwen2.5-Coder (trained for tools, native format)
and on the stand-in (card format)."""

from __future__ import annotations

import json

import pytest

from ondevice.errors import ToolChoiceError
from ondevice.formats import get_format
from ondevice.grammar.calls import CallOptions
from ondevice.settings import CARD
from ondevice.structured import content_format

from ..common import load_example

WEATHER = "What's the weather like in New York in fahrenheit?"
SIDE_EFFECTS = [
    {"type": "function", "function": {
        "name": "send_message", "description": "Post a message to a chat channel",
        "parameters": {"type": "object", "required": ["channel", "text"],
                       "properties": {"channel": {"type": "string"}, "text": {"type": "string"}}}}},
    {"type": "function", "function": {
        "name": "log_event", "description": "Record an analytics event",
        "parameters": {"type": "object", "required": ["kind"], "properties": {"kind": {"type": "string"}}}}},
]


def repeats(calls) -> int:
    """How many calls are identical to an earlier one in the same answer."""
    return sum(1 for i, c in enumerate(calls) if c in calls[:i])


def test_the_weather_query_gives_exactly_one_call(qwen_caller):
    tools, _ = load_example("simple")  # get_weather and search: the old default also searched the news
    result = qwen_caller.call(WEATHER, tools)
    assert [c.name for c in result.calls] == ["get_weather"], result.text
    assert result.calls[0].arguments.get("location") and result.calls[0].arguments.get("unit") == "fahrenheit"


def test_a_side_effect_is_not_repeated(qwen_caller):
    for query in ("Send a message to #ops saying: deploy is done", "Log an event of kind 'signup'"):
        result = qwen_caller.call(query, SIDE_EFFECTS)
        assert result.calls, result.text
        assert len({json.dumps(c.to_dict(), sort_keys=True) for c in result.calls}) == len(result.calls), result.text


def test_after_a_tool_result_the_model_answers_in_text(qwen_caller):
    tools, _ = load_example("simple")
    conversation = qwen_caller.conversation(tools)
    first = conversation.ask("What's the weather in Paris?")
    assert [c.name for c in first.calls] == ["get_weather"], first.text
    conversation.add_tool_result(json.dumps({"temperature": 21, "unit": "celsius", "sky": "sunny"}))
    final = conversation.reply()
    assert final.calls == [] and final.message, final.text
    # allowed again, the same call comes back: the refusal is what ends the loop
    again = qwen_caller.call_messages(conversation.messages[:-1], tools,
                                      settings=qwen_caller.settings.with_(refuse_answered_calls=False))
    assert again.calls and again.calls[0].to_dict() == first.calls[0].to_dict(), again.text

    # An agent loop with a structured output (pydantic-ai's final_result tool, so a call is required;
    # or a response format) gets an answer too: the answer starts over with the answered tool left out,
    # or as the JSON value alone. Where no other tool may be called, an error names the rule and tool.
    messages = conversation.messages[:-1]
    required = qwen_caller.call_messages(messages, tools, options=CallOptions(min_calls=1))
    assert required.calls and required.calls[0].name != "get_weather", required.text
    with pytest.raises(ToolChoiceError, match="already holds .*get_weather.*tool_choice auto"):
        qwen_caller.call_messages(messages, tools, options=CallOptions(min_calls=1, allowed=("get_weather",)))
    schema = {"type": "object", "properties": {"sky": {"type": "string", "maxLength": 20}}, "required": ["sky"],
              "additionalProperties": False}
    answer = qwen_caller.call_messages(messages, tools, options=CallOptions(content=content_format(schema)),
                                       settings=qwen_caller.settings.with_(max_tokens=40))
    assert answer.calls == [] and isinstance(answer.value, dict) and set(answer.value) == {"sky"}, answer.text


def test_the_stand_in_never_sends_a_call_twice(caller):
    tools, case = load_example("parallel")  # the stand-in repeats its two calls until the budget stops it
    query = case["queries"][0]
    loose = caller.call(query, tools, settings=caller.settings.with_(max_identical_calls=0, list_end="grammar",
                                                                       max_tokens=200))
    loose_calls = [v for v, _ in get_format(CARD).complete_calls(loose.text)]
    assert repeats(loose_calls) > 0, loose.text  # the test can fail: repeats without the refusal
    strict = caller.call(query, tools, settings=caller.settings.with_(max_tokens=200))
    assert strict.calls and repeats([c.to_dict() for c in strict.calls]) == 0, strict.text
