"""The Responses API on the real server (the stand-in) with the official openai client: a function tool
plain and streamed (the event sequence), a second turn with function_call_output, text.format, refusals."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from .conftest import MODEL, check_valid, openai_tools

QUERY = "What's the weather like in New York in fahrenheit?"


def flat_tools(example: str) -> list[dict]:
    """An example's tools in the Responses layout (flat: type, name, description, parameters)."""
    return [{"type": "function", **t["function"]} for t in openai_tools(example)]


def test_function_tool_plain_and_streamed(client):
    tools = flat_tools("simple")
    r = client.responses.create(model=MODEL, input=QUERY, tools=tools, tool_choice="required", max_output_tokens=96)
    assert r.status == "completed" and r.object == "response" and r.id.startswith("resp_")
    calls = [item for item in r.output if item.type == "function_call"]
    assert calls and calls[0].name in {t["name"] for t in tools} and calls[0].call_id.startswith("call_")
    check_valid([(c.name, c.arguments) for c in calls], openai_tools("simple"))
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0

    events = list(client.responses.create(model=MODEL, input=QUERY, tools=tools, tool_choice="required",
                                          max_output_tokens=96, stream=True))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"] and kinds[-1] == "response.completed"
    assert kinds.index("response.output_item.added") < kinds.index("response.function_call_arguments.delta") \
        < kinds.index("response.function_call_arguments.done") < kinds.index("response.output_item.done")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    done = next(e for e in events if e.type == "response.function_call_arguments.done")
    assert deltas == done.arguments == calls[0].arguments  # greedy: the same call, streamed
    final = events[-1].response
    assert final.output[0].arguments == calls[0].arguments
    assert final.output[0].call_id == next(e for e in events if e.type == "response.output_item.added").item.call_id


def test_second_turn_with_function_call_output(client):
    tools = flat_tools("simple")
    first = client.responses.create(model=MODEL, input=QUERY, tools=tools, tool_choice="required", max_output_tokens=96)
    call = next(item for item in first.output if item.type == "function_call")
    history = [{"role": "user", "content": QUERY}, call.model_dump(exclude_none=True),
               {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 72}'}]
    second = client.responses.create(model=MODEL, input=history, tools=tools, instructions="Be brief.",
                                     max_output_tokens=96)
    assert second.status in ("completed", "incomplete")
    for item in second.output:
        assert item.type in ("function_call", "message")
        if item.type == "function_call":
            check_valid([(item.name, item.arguments)], openai_tools("simple"))
    streamed = list(client.responses.create(model=MODEL, input=history, tools=tools, instructions="Be brief.",
                                            max_output_tokens=96, stream=True))
    assert [o.type for o in streamed[-1].response.output] == [o.type for o in second.output]


def test_text_format_json_schema(client):
    schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 30}, "days": {"type": "integer"}},
              "required": ["city", "days"], "additionalProperties": False}
    fmt = {"format": {"type": "json_schema", "name": "trip", "schema": schema, "strict": True}}
    r = client.responses.create(model=MODEL, input="Plan 3 days in Rome.", text=fmt, max_output_tokens=120)
    jsonschema.validate(json.loads(r.output_text), schema)
    events = list(client.responses.create(model=MODEL, input="Plan 3 days in Rome.", text=fmt, max_output_tokens=120,
                                          stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == r.output_text and "response.output_text.done" in [e.type for e in events]


def test_stateless_and_bad_input_are_400s(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_123")
    assert err.value.body["param"] == "previous_response_id" and "send the whole conversation" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    assert err.value.body["param"] == "tools" and "only function tools" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=[{"type": "image_generation_call", "id": "x"}])
    assert err.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", max_output_tokens=0)
    assert err.value.body["param"] == "max_output_tokens"
