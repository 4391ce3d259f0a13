"""Calls nobody asked for: a call none of whose values the conversation mentions, or whose required
open argument has a value nobody gave, is refused (Settings.refuse_ungrounded_calls), so an
irrelevant query gets a sentence, not a made-up call.

The Qwen cases are BFCL irrelevance cases outside the sample `ondevice bench peers --limit 20`
judges on (`ondevice bench nocall` drew them): with the check off, Qwen2.5-Coder-0.5B calls the
tool with values it made up.
"""

from __future__ import annotations

import pytest

from ondevice.engine.grounding import Grounding, conversation_text, grounded

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
    # irrelevance_84: the team is in the query, the required date is made up
    "Who won the basketball game between Lakers and Celtics yesterday?": [{
        "name": "get_stock_data", "description": "Retrieve the current stock price for a specific company.",
        "parameters": {"type": "object", "properties": {
            "company_name": {"type": "string", "description": "The company for which to retrieve the stock price."},
            "date": {"type": "string", "description": "The date for which to retrieve the stock price."}},
            "required": ["company_name", "date"]}}],
    # irrelevance_230: the city is in the query, the required price is made up
    "Find a pet-friendly train station in Miami": [{
        "name": "find_hotel", "description": "Search for hotels based on specific criteria like price range and pet policy.",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city where you want to book the hotel."},
            "max_price_per_night": {"type": "number", "description": "The maximum amount you are willing to pay per night."},
            "pet_friendly": {"type": "boolean", "description": "Whether the hotel should allow pets. Defaults to false."}},
            "required": ["location", "max_price_per_night"]}}],
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
@pytest.mark.parametrize("value, text", [
    (-25, "coefficients 5, 20, and -25"),  # the sign is the text's, not a number's
    (0.07, "annual return rate is 7%"),  # a fraction for a percentage
    (5000, "i invest $5,000"),  # digit groups
    (2, "for two adults"), (12, "a dozen eggs"), (3, "the third floor"),  # words
    ("X", "invest in stock 'x'"),  # one character, a word of the text
    ("19:00", "from 7 pm to 9 pm"),  # a clock time's hour
    ("Germany", "key events in german history"),  # a shared stem
    ("GBP", "from british pounds to japanese yen"), ("JPY", "from british pounds to japanese yen"),  # codes
])
def test_a_value_is_mentioned_in_the_forms_people_write_it(value, text):
    assert Grounding(text).mentions(value)


@pytest.mark.nomodel
@pytest.mark.parametrize("value, text", [
    (25, "it is 250 meters"), ("x", "next week"), ("14:00", "from 7 pm"), ("Gerbil", "german history"),
    ("USD", "from british pounds"),
    ("Los Angeles", "who won between the lakers and celtics?"),  # "la" starts "lakers": no abbreviation
    ("The Metropolitan Museum of Art", "famous dancers of the 19th century"),  # "the", "of" name nothing
])
def test_a_value_the_text_does_not_hold_is_not_mentioned(value, text):
    assert not Grounding(text).mentions(value)


STOCK = {"type": "object", "properties": {
    "company": {"type": "string"}, "date": {"type": "string"}, "exchange": {"type": "string", "enum": ["NYSE", "LSE"]},
    "adjusted": {"type": "boolean"}, "limit": {"type": "integer", "default": 10}, "offset": {"type": "integer"}},
    "required": ["company", "date", "exchange", "adjusted", "limit", "offset"]}


@pytest.mark.nomodel
@pytest.mark.parametrize("arguments, expected", [
    ({"company": "Apple", "date": "2024-05-01", "exchange": "LSE", "adjusted": True, "limit": 10, "offset": 0}, True),
    ({"company": "Apple", "date": "2023-04-15", "exchange": "LSE", "adjusted": True, "limit": 10, "offset": 0}, False),
    ({"company": "Apple", "date": "yesterday", "exchange": "NYSE", "adjusted": False, "limit": 10, "offset": 0}, True),
    ({"company": "Apple", "date": "2024-05-01", "exchange": "LSE", "adjusted": True, "limit": 25, "offset": 0}, False),
    ({"company": "Apple", "date": "2024-05-01", "exchange": "LSE", "adjusted": True, "limit": 10, "offset": 40}, False),
])
def test_every_required_open_argument_needs_a_value_the_conversation_gave(arguments, expected):
    """The enum, the boolean, the parameter's default and a neutral 0 need no mention; a date or a
    count nobody gave makes the call one nobody asked for."""
    text = "apple's stock price on 2024-05-01 and yesterday"
    assert Grounding(text).grounded({"name": "stock", "arguments": arguments}, STOCK) is expected


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


@pytest.mark.nomodel
@pytest.mark.parametrize("arguments, expected", [
    ({"service_id": 2, "city": "Bangkok"}, True),  # the description names 2: the tool's code for "ironing"
    ({"service_id": 7, "city": "Bangkok"}, False),  # a number nobody gave, the description neither
    ({"service_id": 2, "city": "Chiang Mai"}, False),  # a string the description names is no evidence
])
def test_a_number_the_parameter_description_names_is_the_tools_vocabulary(arguments, expected):
    schema = {"type": "object", "properties": {
        "service_id": {"type": "integer", "description": "1 for cleaning, 2 for ironing, 3 for both"},
        "city": {"type": "string", "description": "The city, e.g. Chiang Mai"}}, "required": ["service_id", "city"]}
    text = "find a housekeeper who irons in bangkok"
    assert Grounding(text).grounded({"name": "providers", "arguments": arguments}, schema) is expected


DERIVATIVE = {"type": "object", "properties": {
    "function": {"type": "string"}, "x": {"type": "number"},
    "method": {"type": "string", "enum": ["central", "forward", "backward"]}}, "required": ["function", "x"]}


@pytest.mark.nomodel
@pytest.mark.parametrize("later, expected", [
    ({"function": "x**2", "x": 5, "method": "forward"}, False),  # a choice nobody named, the rest repeated
    ({"function": "x**2", "x": 7, "method": "central"}, True),  # a value the user gave: a second request
    ({"function": "x**2", "x": 5, "method": "backward"}, True),  # the user named this choice too
])
def test_a_later_call_that_only_changes_what_nobody_named_is_refused(later, expected):
    text = "how steep is x**2 at x = 5 and at x = 7? use the backward method too"
    first = {"name": "d", "arguments": {"function": "x**2", "x": 5, "method": "central"}}
    call = {"name": "d", "arguments": later}
    assert Grounding(text).grounded(first, DERIVATIVE) is True
    assert Grounding(text).grounded(call, DERIVATIVE, [first]) is expected


def test_qwen_does_not_ground_a_made_up_city_on_a_word_that_starts_like_it(qwen_caller):
    """Qwen answers a sports question given a weather tool with Los Angeles' weather; "la" starting
    "lakers" is no abbreviation of it."""
    tools = WEATHER[:1] + [{"name": "search", "description": "Search for information on the internet",
                            "parameters": {"type": "object", "properties": {"query": {"type": "string"}},
                                           "required": ["query"]}}]
    query = "Who won the game between the Lakers and the Celtics yesterday?"
    s = qwen_caller.settings.with_(max_tokens=96)
    made_up = qwen_caller.call(query, tools, settings=s.with_(refuse_ungrounded_calls=False))
    assert "get_weather" in [c.name for c in made_up.calls], "the case no longer shows the defect"
    result = qwen_caller.call(query, tools, settings=s)
    assert "get_weather" not in [c.name for c in result.calls], result.calls_as_dicts()
