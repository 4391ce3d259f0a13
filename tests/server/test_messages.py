"""The Anthropic Messages API (/v1/messages, /v1/messages/count_tokens) on the real server with the
official anthropic client: tool calls valid against input_schema, plain and streamed (the event
order, the stream equal to the answer), a forced tool, count_tokens, a tool loop and stop sequences
on Qwen2.5-Coder, errors in Anthropic's shape. The translation itself is tested model-free."""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

import pytest

from ondevice.server.messages import MessageStream, message_object, parse_messages_request
from ondevice.server.protocol import APIError
from ondevice.server.tool_stream import find_stop
from ondevice.formats.result import CallResult
from ondevice.settings import Settings

from .conftest import API_KEY, MODEL, QWEN, anthropic_tools, check_valid, openai_tools

anthropic = pytest.importorskip("anthropic", reason="pip install anthropic")

QUERY = [{"role": "user", "content": "What's the weather like in New York in fahrenheit?"}]
RAW_EVENTS = {"message_start", "content_block_start", "content_block_delta", "content_block_stop", "message_delta",
              "message_stop"}
WEATHER = [{"name": "get_weather", "description": "Get the current weather in a city.",
            "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


def calls_of(message: Any) -> list[tuple[str, str]]:
    return [(b.name, json.dumps(b.input)) for b in message.content if b.type == "tool_use"]


def without_ids(message: Any) -> dict[str, Any]:
    """A message as comparable data: the ids (fresh for every answer) left out."""
    body = message.model_dump(exclude_none=True)
    body.pop("id")
    for block in body["content"]:
        block.pop("id", None)
    return body


def streamed(client: Any, **kwargs: Any) -> tuple[list[str], Any]:
    """The raw event types of a streamed request (in order) and the message the SDK assembled."""
    with client.messages.stream(**kwargs) as stream:
        kinds = [event.type for event in stream if event.type in RAW_EVENTS]
        return kinds, stream.get_final_message()


def post(server: Any, path: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    """A request with http.client (bodies and headers the SDK would not send); (status, JSON)."""
    url = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    conn.request("POST", path, body=json.dumps(body), headers={"Content-Type": "application/json", **headers})
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, payload


# --- on the stand-in ------------------------------------------------------------------------------------
def test_tool_call_plain_streamed_and_counted(server):
    client = server.anthropic()
    tools = anthropic_tools("simple")
    kwargs = dict(model=MODEL, max_tokens=96, messages=QUERY, tools=tools, tool_choice={"type": "any"})
    message = client.messages.create(**kwargs)
    assert message.type == "message" and message.role == "assistant" and message.id.startswith("msg_")
    assert message.stop_reason == "tool_use" and message.stop_sequence is None
    assert calls_of(message) and all(b.type == "tool_use" and b.id.startswith("toolu_") for b in message.content)
    check_valid(calls_of(message), openai_tools("simple"))
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0

    kinds, final = streamed(client, **kwargs)
    assert kinds[0] == "message_start" and kinds[-2:] == ["message_delta", "message_stop"]
    blocks = kinds[1:-2]  # each block: start, its deltas, stop
    assert blocks[0] == "content_block_start" and blocks[-1] == "content_block_stop"
    assert blocks.count("content_block_start") == blocks.count("content_block_stop") == len(message.content)
    assert without_ids(final) == without_ids(message)  # greedy: the stream assembles the same message

    count = client.messages.count_tokens(model=MODEL, messages=QUERY, tools=tools)
    assert count.input_tokens == message.usage.input_tokens  # the prompt the engine decoded after


def test_forced_tool_single_call(server):
    message = server.anthropic().messages.create(
        model=MODEL, max_tokens=96, messages=QUERY, tools=anthropic_tools("simple"),
        tool_choice={"type": "tool", "name": "get_weather", "disable_parallel_tool_use": True})
    assert message.stop_reason == "tool_use"
    assert [b.name for b in message.content] == ["get_weather"]
    check_valid(calls_of(message), openai_tools("simple"))


def test_auth_by_x_api_key_or_bearer(server):
    with pytest.raises(anthropic.AuthenticationError) as err:
        server.anthropic(api_key="wrong").messages.count_tokens(model=MODEL, messages=QUERY)
    assert err.value.status_code == 401 and err.value.body["type"] == "error"
    assert err.value.body["error"]["type"] == "authentication_error" and "x-api-key" in err.value.body["error"]["message"]
    body = {"model": MODEL, "messages": QUERY}
    assert post(server, "/v1/messages/count_tokens", body, {})[0] == 401
    assert post(server, "/v1/messages/count_tokens", body, {"x-api-key": API_KEY})[0] == 200
    assert post(server, "/v1/messages/count_tokens", body, {"Authorization": f"Bearer {API_KEY}"})[0] == 200


def body(**fields: Any) -> dict[str, Any]:
    return {"model": MODEL, "max_tokens": 32, "messages": QUERY, "tools": anthropic_tools("simple"), **fields}


@pytest.mark.parametrize("request_body,status,kind,names", [
    ({k: v for k, v in body().items() if k != "max_tokens"}, 400, "invalid_request_error", "max_tokens"),
    (body(max_tokens=0), 400, "invalid_request_error", "max_tokens"),
    (body(model="claude-sonnet-4-5"), 404, "not_found_error", "model"),
    (body(messages=[{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "x"}}]}]),
     400, "invalid_request_error", "messages[0].content[0]"),
    (body(thinking={"type": "enabled", "budget_tokens": 1024}), 400, "invalid_request_error", "thinking"),
    (body(tools=[{"type": "web_search_20250305", "name": "web_search"}]), 400, "invalid_request_error", "tools[0]"),
    (body(tools=[{"name": "f"}]), 400, "invalid_request_error", "input_schema"),
    (body(tool_choice={"type": "tool", "name": "nope"}), 400, "invalid_request_error", "tool_choice"),
    (body(tool_choice={"type": "required"}), 400, "invalid_request_error", "tool_choice"),
    (body(stop_sequences="END"), 400, "invalid_request_error", "stop_sequences"),
    (body(temperature=1.5), 400, "invalid_request_error", "temperature"),
    (body(top_k=5), 400, "invalid_request_error", "top_k"),
    (body(messages=QUERY + [{"role": "assistant", "content": "The weather is"}]), 400, "invalid_request_error",
     "prefill"),
    (body(messages=QUERY + [{"role": "assistant", "content": "ok"},
                            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_x"}]}]),
     400, "invalid_request_error", "messages[2].content[0]"),
])
def test_bad_requests_in_anthropic_shape(server, request_body, status, kind, names):
    got, payload = post(server, "/v1/messages", request_body, {"x-api-key": API_KEY})
    assert got == status, payload
    assert set(payload) == {"type", "error"} and payload["type"] == "error" and set(payload["error"]) == {"type", "message"}
    assert payload["error"]["type"] == kind and names in payload["error"]["message"], payload


def test_bad_request_through_the_sdk(server):
    with pytest.raises(anthropic.BadRequestError) as err:
        server.anthropic().messages.create(model=MODEL, max_tokens=16, messages=[{"role": "user", "content": " "}])
    assert err.value.body["error"]["type"] == "invalid_request_error" and "messages[0]" in err.value.body["error"]["message"]
    with pytest.raises(anthropic.NotFoundError):
        server.anthropic().post("/v1/messages/batches", cast_to=object, body={})


# --- on Qwen2.5-Coder (a sentence after a tool result; stop sequences) ----------------------------------------
def test_tool_loop(qwen_server):
    client = qwen_server.anthropic()
    question = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.messages.create(model=QWEN, max_tokens=48, messages=question, tools=WEATHER)
    assert first.stop_reason == "tool_use" and [b.type for b in first.content] == ["tool_use"]
    use = first.content[0]
    assert use.name == "get_weather" and isinstance(use.input["city"], str)

    history = question + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id,
                                      "content": [{"type": "text", "text": "Sunny, 22 degrees Celsius."}]}]}]
    final = client.messages.create(model=QWEN, max_tokens=48, messages=history, tools=WEATHER)
    assert final.stop_reason in ("end_turn", "tool_use", "max_tokens")
    if final.stop_reason == "end_turn":  # a sentence ends the loop
        assert [b.type for b in final.content] == ["text"] and final.content[0].text
    else:
        check_valid(calls_of(final), [{"type": "function", "function": {"name": "get_weather",
                                                                        "parameters": WEATHER[0]["input_schema"]}}])
    kinds, again = streamed(client, model=QWEN, max_tokens=48, messages=history, tools=WEATHER)
    assert without_ids(again) == without_ids(final) and kinds[0] == "message_start" and kinds[-1] == "message_stop"


def test_text_and_stop_sequences(qwen_server):
    client = qwen_server.anthropic()
    hello = dict(model=QWEN, max_tokens=24, system=[{"type": "text", "text": "Be brief."}],
                 messages=[{"role": "user", "content": "Say hello."}])
    full = client.messages.create(**hello)
    assert [b.type for b in full.content] == ["text"] and full.stop_reason in ("end_turn", "max_tokens")
    text = full.content[0].text
    stop = next(c for c in text[1:] if not c.isalnum() and c != " ")  # the first punctuation after the first word
    cut = client.messages.create(stop_sequences=[stop, "never written"], **hello)
    assert cut.stop_reason == "stop_sequence" and cut.stop_sequence == stop
    assert cut.content[0].text == text[:text.index(stop)].strip()
    assert cut.usage.output_tokens < full.usage.output_tokens  # the decode ended there, not at its end
    kinds, again = streamed(client, stop_sequences=[stop, "never written"], **hello)
    assert without_ids(again) == without_ids(cut)
    assert kinds == ["message_start", "content_block_start"] + ["content_block_delta"] * (len(kinds) - 5) + \
        ["content_block_stop", "message_delta", "message_stop"]


# --- model-free: the translation and the stream writer ------------------------------------------------
@pytest.mark.nomodel
def test_translation_to_the_chat_request():
    history = [
        {"role": "user", "content": [{"type": "text", "text": "Weather in Oslo?"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "Let me check."},
                                          {"type": "tool_use", "id": "toolu_1", "name": "get_weather",
                                           "input": {"city": "Oslo"}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "down",
                                      "is_error": True}, {"type": "text", "text": "And now?"}]},
    ]
    req = parse_messages_request({"model": "m", "max_tokens": 9, "system": "Be brief.", "messages": history,
                                  "tools": WEATHER, "stop_sequences": ["\n\n"], "temperature": 0.5,
                                  "tool_choice": {"type": "any", "disable_parallel_tool_use": True}},
                                 "m", Settings(), "native").chat
    assert [m["role"] for m in req.messages] == ["system", "user", "assistant", "tool", "user"]
    assert req.messages[2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    assert req.messages[3]["content"] == "Error: down"  # is_error reaches the model as text
    assert (req.options.min_calls, req.options.max_calls) == (1, 1)
    assert req.settings.max_tokens == 9 and req.settings.temperature == 0.5 and req.stop_sequences == ("\n\n",)
    forced = parse_messages_request({"model": "m", "max_tokens": 9, "messages": history[:1], "tools": WEATHER,
                                     "tool_choice": {"type": "tool", "name": "get_weather"}}, "m", Settings())
    assert forced.chat.options.allowed == ("get_weather",) and forced.chat.options.max_calls is None
    empty = [history[0], {"role": "assistant", "content": "hi"}, {"role": "user", "content": ""}]
    with pytest.raises(APIError, match=r"messages\[2\]: the user message is empty"):  # Anthropic's index, not chat's
        parse_messages_request({"model": "m", "max_tokens": 9, "system": "s", "messages": empty}, "m", Settings())


@pytest.mark.nomodel
def test_stop_sequences_and_the_stream_writer():
    assert find_stop("Hello! Bye.", ["Bye", "!"]) == (5, "!")
    assert find_stop("abc", ["bc", "abc"]) == (0, "abc")  # both end at 3: the longer one
    assert find_stop("abc", ["x"]) is None
    req = parse_messages_request({"model": "m", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}],
                                  "stop_sequences": ["STOP"]}, "m", Settings(), "native")
    writer = MessageStream(req, "m")
    events = [e for piece in [" Hello", " wor", "ld ST", "OP and more"] for e in writer.feed(piece)]
    result = CallResult([], " Hello world STOP and more", "budget", True, {"prompt_tokens": 5, "sampled_tokens": 7})
    events += list(writer.finish(result))
    data = [json.loads(e.split("data: ", 1)[1]) for e in events]
    deltas = "".join(d["delta"]["text"] for d in data if d["type"] == "content_block_delta")
    assert deltas == "Hello world" == message_object(req, "m", result)["content"][0]["text"]
    assert [d["type"] for d in data][-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert data[-2]["delta"] == {"stop_reason": "stop_sequence", "stop_sequence": "STOP"}
    assert data[-2]["usage"] == {"input_tokens": 5, "output_tokens": 7}
