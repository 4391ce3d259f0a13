"""The Responses API on the real server (the stand-in) with the official openai client: a function tool
plain and streamed (the event sequence), text.format, stored responses (a second turn with
function_call_output after previous_response_id, equal to the whole conversation sent stateless; retrieve,
delete, store false), refusals."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from .conftest import MODEL, check_valid, openai_tools
from .test_errors import assert_error, raw

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


def test_stored_responses_continue_retrieve_and_delete(server, client):
    """store (the default) keeps a response; previous_response_id continues it exactly as if the whole
    conversation were sent; retrieve and delete; store false keeps nothing; another key is refused."""
    tools = flat_tools("simple")
    first = client.responses.create(model=MODEL, input=QUERY, tools=tools, tool_choice="required", max_output_tokens=96)
    assert first.store is True and first.previous_response_id is None
    assert client.responses.retrieve(first.id).model_dump() == first.model_dump()
    call = next(item for item in first.output if item.type == "function_call")
    result = {"type": "function_call_output", "call_id": call.call_id, "output": '{"temperature": 72}'}

    # The instructions do not carry over (as in OpenAI's API): each request sends its own.
    events = list(client.responses.create(model=MODEL, previous_response_id=first.id, input=[result], tools=tools,
                                          instructions="Be brief.", max_output_tokens=48, stream=True))
    second = events[-1].response  # stored when the stream finished
    assert second.store is True and second.previous_response_id == first.id
    assert client.responses.retrieve(second.id).output == second.output

    whole = client.responses.create(model=MODEL, input=[{"role": "user", "content": QUERY},
                                                        call.model_dump(exclude_none=True), result],
                                    tools=tools, instructions="Be brief.", max_output_tokens=48, store=False)
    assert whole.store is False and whole.status in ("completed", "incomplete")
    for item in whole.output:  # after the tool's result: another valid call, or a message
        assert item.type in ("function_call", "message")
        if item.type == "function_call":
            check_valid([(item.name, item.arguments)], openai_tools("simple"))
    # Greedy: the same prompt (token for token) and the same answer as the continuation.
    assert whole.usage.input_tokens == second.usage.input_tokens
    assert [(o.type, getattr(o, "arguments", None)) for o in whole.output] == \
        [(o.type, getattr(o, "arguments", None)) for o in second.output]
    with pytest.raises(openai.NotFoundError) as err:
        client.responses.retrieve(whole.id)  # store false: nothing kept
    assert err.value.body["code"] == "response_not_found" and whole.id in err.value.body["message"]

    status, body = raw(server, "DELETE", f"/responses/{first.id}")
    assert status == 200 and body == {"id": first.id, "object": "response.deleted", "deleted": True}
    assert_error(*raw(server, "GET", f"/responses/{first.id}"), 404)
    assert_error(*raw(server, "DELETE", f"/responses/{first.id}"), 404)
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, previous_response_id=first.id, input=[result], tools=tools)
    assert err.value.body["param"] == "previous_response_id" and first.id in err.value.body["message"]
    # The second response was stored with the whole conversation: it still continues, the first gone.
    third = client.responses.create(model=MODEL, previous_response_id=second.id, input="Thanks.", tools=tools,
                                    tool_choice="none", max_output_tokens=8)
    assert third.usage.input_tokens > second.usage.input_tokens
    client.responses.delete(second.id)  # the SDK's own call
    assert_error(*raw(server, "GET", f"/responses/{second.id}"), 404)

    assert_error(*raw(server, "GET", f"/responses/{second.id}", key="another-key"), 401)
    assert_error(*raw(server, "GET", "/responses/resp_x?stream=true"), 400, "stream")


def test_bad_input_are_400s(client):
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", previous_response_id="resp_123")
    assert err.value.body["param"] == "previous_response_id" and "'resp_123' not found" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", store="yes")
    assert err.value.body["param"] == "store"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", tools=[{"type": "web_search"}])
    assert err.value.body["param"] == "tools" and "only function tools" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input=[{"type": "image_generation_call", "id": "x"}])
    assert err.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(model=MODEL, input="hi", max_output_tokens=0)
    assert err.value.body["param"] == "max_output_tokens"
