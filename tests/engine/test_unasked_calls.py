"""Calls nobody asked for: a call none of whose values the conversation mentions is refused
(Settings.refuse_ungrounded_calls), so an irrelevant query gets a sentence, not a made-up call.

The Qwen cases are BFCL irrelevance cases outside the sample `ondevice bench peers --limit 20`
judges on (`ondevice bench nocall` drew them): with the check off, Qwen2.5-Coder-0.5B calls the
tool with values it made up.
"""

from __future__ import annotations

import pytest

from ondevice.engine.grounding import conversation_text, grounded

IRRELEVANT = {
    # irrelevance_136
    "Who is the Vice President of United States?": [{
        "name": "us_president_in_year", "description": "Find out who was the president of United States in a given year.",
        "parameters": {"type": "object", "properties": {
            "year": {"type": "integer", "description": "The year to lookup for."},
            "state": {"type": "string", "description": "Optional. State to lookup for governor. Default is all US."}},
            "required": ["year"]}}],
    # irrelevance_202
    "Who won the world series game?": [{
        "name": "game_score.calculate",
        "description": "Calculate the final game score based on the total points earned by each team.",
        "parameters": {"type": "object", "properties": {
            "team1_points": {"type": "integer", "description": "The total points earned by team 1."},
            "team2_points": {"type": "integer", "description": "The total points earned by team 2."},
            "game_rounds": {"type": "integer", "description": "The total game rounds. Defaults to 3 if not provided."}},
            "required": ["team1_points", "team2_points"]}}],
    # irrelevance_123
    "What are the calories of a Big Mac?": [{
        "name": "calculate_bmi", "description": "Calculate the Body Mass Index for a person based on their height and weight",
        "parameters": {"type": "object", "properties": {
            "height": {"type": "number", "description": "The height of the person in meters."},
            "weight": {"type": "number", "description": "The weight of the person in kilograms."},
            "unit": {"type": "string", "description": "The unit of measure. Defaults to metric units (kilograms/meters). "
                                                      "Other option is imperial (pounds/inches)."}},
            "required": ["height", "weight"]}}],
}

WEATHER = [{"name": "get_weather", "description": "Get the current weather in a location",
            "parameters": {"type": "object", "properties": {
                "location": {"type": "string", "description": "The city, e.g. San Francisco, CA"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["location"]}},
           {"name": "send_email", "description": "Send an email",
            "parameters": {"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}},
                           "required": ["to", "body"]}}]
ONE_CALL = [
    "What's the weather like in New York in fahrenheit?",
    "What's the weather in NYC?",
    "Tell me the weather in Paris, in celsius please.",
]


@pytest.mark.nomodel
@pytest.mark.parametrize("call, text, expected", [
    ({"name": "f", "arguments": {"location": "New York, NY"}}, "weather in nyc?", True),  # "ny" in "nyc"
    ({"name": "f", "arguments": {"location": "New York"}}, "weather in nyc?", True),  # initials
    ({"name": "f", "arguments": {"location": "New York"}}, "is anyone there?", False),  # "ny" inside a word
    ({"name": "f", "arguments": {"timezone": "Asia/Tokyo"}}, "what time is it in tokyo?", True),
    ({"name": "f", "arguments": {"a": 10.0, "b": "x"}}, "base is 10 meters", True),  # 10.0 is the text's 10
    ({"name": "f", "arguments": {"year": 2021, "state": "NC"}}, "who is the vice president?", False),
    ({"name": "f", "arguments": {"data": [0.5, 0.5]}}, "flip a coin", False),
    ({"name": "f", "arguments": {}}, "anything", True),  # no values: no evidence either way
    ({"name": "f", "arguments": {"flag": True}}, "anything", True),
])
def test_a_call_is_grounded_by_one_value_the_conversation_mentions(call, text, expected):
    assert grounded(call, text) is expected


@pytest.mark.nomodel
def test_the_tools_a_format_writes_into_the_user_turn_do_not_ground_a_call():
    content = "TOOLS: get_weather(unit: celsius)\nQUERY: who won?"
    text = conversation_text([{"role": "user", "content": content}, {"role": "tool", "content": "Celsius 21"}],
                             query_offset=lambda c: c.find("QUERY:"))
    assert "get_weather" not in text and "who won?" in text and "celsius 21" in text  # tool results count


@pytest.mark.parametrize("query", sorted(IRRELEVANT))
def test_qwen_answers_an_irrelevant_query_without_a_made_up_call(qwen_caller, query):
    s = qwen_caller.settings.with_(max_tokens=64)
    made_up = qwen_caller.call(query, IRRELEVANT[query], settings=s.with_(refuse_ungrounded_calls=False))
    assert made_up.calls, "the case no longer shows the defect: Qwen answers it without a call even unchecked"
    result = qwen_caller.call(query, IRRELEVANT[query], settings=s)
    assert result.calls == [] and result.message, (result.text, made_up.calls_as_dicts())


@pytest.mark.parametrize("query", ONE_CALL)
def test_qwen_makes_one_call_for_a_one_call_query(qwen_caller, query):
    result = qwen_caller.call(query, WEATHER, settings=qwen_caller.settings.with_(max_tokens=96))
    assert [c.name for c in result.calls] == ["get_weather"], result.text
