"""`ondevice serve` answers Chat Completions requests on the card's examples: every tool_choice mode
enforced, streaming equal to non-streaming, multi-turn with tool results."""

from __future__ import annotations

import json

import openai
import pytest

from .conftest import MODEL, calls_of, check_valid, example_query, openai_tools

WITH_TOOLS = ["simple", "multiple", "parallel", "parallel_multiple", "multi_turn", "wrong_tool"]
MAX_TOKENS = 96


def ask(client, example, **kwargs):
    kwargs.setdefault("max_tokens", MAX_TOKENS)
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": example_query(example)}], tools=openai_tools(example),
        **kwargs)


def test_health_and_models(server, client):
    import urllib.request

    health = json.loads(urllib.request.urlopen(server.url.removesuffix("/v1") + "/health").read())
    assert health["status"] == "ok" and health["model"] == MODEL
    assert [m.id for m in client.models.list().data] == [MODEL]
    assert server.ready_line == f"ondevice: serving {MODEL} on {server.url}"
    assert server.url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("example", WITH_TOOLS)
def test_tool_choice_modes(client, example):
    tools = openai_tools(example)
    names = [t["function"]["name"] for t in tools]

    auto = ask(client, example)
    check_valid(calls_of(auto.choices[0].message), tools)
    assert auto.choices[0].finish_reason in ("tool_calls", "stop", "length")
    assert auto.usage.prompt_tokens > 0 and auto.usage.completion_tokens > 0

    none = ask(client, example, tool_choice="none")
    assert none.choices[0].message.tool_calls is None and none.choices[0].message.content == ""
    assert none.choices[0].finish_reason == "stop"

    named = ask(client, example, tool_choice={"type": "function", "function": {"name": names[-1]}})
    calls = calls_of(named.choices[0].message)
    assert len(calls) >= 1 and {n for n, _ in calls} == {names[-1]}
    check_valid(calls, tools)

    if example == "parallel_multiple":
        return  # the stand-in's first pick, sum_of_multiples, never closes its array within the budget
    required = ask(client, example, tool_choice="required")
    calls = calls_of(required.choices[0].message)
    assert len(calls) >= 1
    check_valid(calls, tools)

    single = ask(client, example, tool_choice="required", parallel_tool_calls=False)
    calls = calls_of(single.choices[0].message)
    assert len(calls) == 1
    check_valid(calls, tools)
    assert single.choices[0].finish_reason == "tool_calls"
    assert single.choices[0].message.tool_calls[0].id.startswith("call_")


def test_allowed_tools_choice(client):
    tools = openai_tools("multiple")
    r = ask(client, "multiple", tool_choice={"type": "allowed_tools", "allowed_tools": {
        "mode": "required", "tools": [{"type": "function", "function": {"name": "country_info.population"}}]}})
    calls = calls_of(r.choices[0].message)
    assert calls and {n for n, _ in calls} == {"country_info.population"}
    check_valid(calls, tools)


def test_no_tools_answers_no_call(client):
    r = client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": example_query("no_tools")}])
    assert r.choices[0].message.tool_calls is None and r.choices[0].finish_reason == "stop"


def collect_stream(client, example, **kwargs):
    """The streamed answer rebuilt from its deltas: calls by index, finish reason, usage, ids."""
    calls: dict[int, list] = {}
    ids: dict[int, str] = {}
    finish = usage = None
    for chunk in ask(client, example, stream=True, stream_options={"include_usage": True}, **kwargs):
        if not chunk.choices:
            usage = chunk.usage
            continue
        choice = chunk.choices[0]
        for delta in choice.delta.tool_calls or []:
            if delta.id is not None:
                assert delta.index not in ids, "a call started twice"
                ids[delta.index] = delta.id
                calls[delta.index] = [delta.function.name, ""]
            calls[delta.index][1] += delta.function.arguments or ""
        if choice.finish_reason is not None:
            finish = choice.finish_reason
    assert sorted(calls) == list(range(len(calls))), "call indexes are 0, 1, 2, ..."
    assert len(set(ids.values())) == len(ids), "every call has its own id"
    return [tuple(calls[i]) for i in sorted(calls)], finish, usage


@pytest.mark.parametrize("example,choice", [("simple", "auto"), ("parallel", "required"),
                                            ("parallel_multiple", "auto"), ("multiple", "none"),
                                            ("wrong_tool", "required")])
def test_streaming_equals_non_streaming(client, example, choice):
    plain = ask(client, example, tool_choice=choice)
    streamed, finish, usage = collect_stream(client, example, tool_choice=choice)
    expected = calls_of(plain.choices[0].message)
    assert finish == plain.choices[0].finish_reason
    assert usage is not None and usage.completion_tokens == plain.usage.completion_tokens
    if finish != "length":
        assert streamed == expected
    else:  # the budget cut a call: the stream has sent its beginning, the answer keeps complete calls only
        assert streamed[:len(expected)] == expected and len(streamed) <= len(expected) + 1


def test_multi_turn_with_tool_results(client):
    tools = openai_tools("multi_turn")
    first = [{"role": "user", "content": "What's the weather like in Madrid in celsius?"}]
    r1 = client.chat.completions.create(model=MODEL, messages=first, tools=tools, tool_choice="required",
                                        max_tokens=MAX_TOKENS)
    message = r1.choices[0].message
    assert message.tool_calls
    history = first + [
        {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in message.tool_calls]},
        *({"role": "tool", "tool_call_id": c.id, "content": json.dumps({"temperature": 21, "unit": "celsius"})}
          for c in message.tool_calls),
    ]
    # A follow-up question after the tool results (the card's second turn) ...
    r2 = client.chat.completions.create(model=MODEL, messages=history + [
        {"role": "user", "content": "And in Edinburgh in celsius?"}], tools=tools, max_tokens=MAX_TOKENS)
    check_valid(calls_of(r2.choices[0].message), tools)
    # ... and an answer right after the tool results, streamed and not.
    r3 = client.chat.completions.create(model=MODEL, messages=history, tools=tools, max_tokens=MAX_TOKENS)
    check_valid(calls_of(r3.choices[0].message), tools)
    streamed = client.chat.completions.create(model=MODEL, messages=history, tools=tools, max_tokens=MAX_TOKENS,
                                              stream=True)
    parts: dict[int, list] = {}
    for chunk in streamed:
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            parts.setdefault(delta.index, [delta.function.name, ""])[1] += delta.function.arguments or ""
    assert [tuple(parts[i]) for i in sorted(parts)] == calls_of(r3.choices[0].message)


def test_system_message_and_sampling_settings(client):
    tools = openai_tools("simple")
    messages = [{"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": [{"type": "text", "text": example_query("simple")}]}]
    a = client.chat.completions.create(model=MODEL, messages=messages, tools=tools, temperature=0.9, seed=3,
                                       max_tokens=MAX_TOKENS)
    b = client.chat.completions.create(model=MODEL, messages=messages, tools=tools, temperature=0.9, seed=3,
                                       max_tokens=MAX_TOKENS)
    check_valid(calls_of(a.choices[0].message), tools)
    assert calls_of(a.choices[0].message) == calls_of(b.choices[0].message)


def test_budget_gives_length(client):
    r = ask(client, "parallel_multiple", max_tokens=12)
    assert r.choices[0].finish_reason == "length"
    check_valid(calls_of(r.choices[0].message), openai_tools("parallel_multiple"))
    # A required call that the budget cannot complete is an error naming max_tokens, not an empty answer.
    with pytest.raises(openai.BadRequestError) as info:
        ask(client, "parallel_multiple", tool_choice="required", max_tokens=12)
    assert info.value.body["param"] == "max_tokens" and "raise max_tokens" in info.value.body["message"]
