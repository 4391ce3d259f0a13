"""A reasoning model behind `ondevice serve`, driven by the official OpenAI SDK: the thought comes back
as ``reasoning_content`` (whole and as deltas, before the calls) in Chat Completions and as a reasoning
item in the Responses API, never as a call; ``reasoning_effort: "none"`` (or
``chat_template_kwargs.enable_thinking: false``) turns it off. The model is the tiny random-weight
Qwen3 (real tokenizer, real template): the tests check the layout, not the thought."""

from __future__ import annotations

import json

import pytest

from ondevice.formats.blocks import ToolCall, validate_calls
from ondevice.schema.tools import normalize_tools

from .conftest import API_KEY, Server

QUERY = [{"role": "user", "content": "Warm the house up, please."}]
# Sampled (seeded): greedy, the random model repeats its last token, a blank thought. One tool of
# enums and booleans keeps its calls short.
MODE = [{"type": "function", "function": {
    "name": "set_mode", "description": "Set the thermostat mode",
    "parameters": {"type": "object", "properties": {"mode": {"type": "string", "enum": ["heat", "cool", "off"]},
                                                    "fan": {"type": "boolean"}}, "required": ["mode", "fan"]}}}]
SAMPLED = {"temperature": 1.0, "seed": 11}


@pytest.fixture(scope="module")
def qwen3_server(tiny_qwen3_gguf):
    srv = Server("--model", str(tiny_qwen3_gguf), "--reasoning-budget", "16", "--api-key", API_KEY)
    yield srv
    srv.stop()


def calls_of(tool_calls) -> list[ToolCall]:
    return [ToolCall(c.function.name, json.loads(c.function.arguments)) for c in tool_calls or []]


def test_chat_completions_return_the_thought_whole_and_streamed(qwen3_server):
    client = qwen3_server.client()
    tools = MODE
    model = client.models.list().data[0].id
    whole = client.chat.completions.create(model=model, messages=QUERY, tools=tools, tool_choice="required",
                                           max_tokens=64, **SAMPLED)
    message = whole.choices[0].message
    thought = message.model_extra["reasoning_content"]
    assert isinstance(thought, str) and thought.strip()
    calls = calls_of(message.tool_calls)
    assert calls and validate_calls(calls, normalize_tools(tools)) == []
    assert whole.usage.completion_tokens_details.reasoning_tokens > 0

    stream = client.chat.completions.create(model=model, messages=QUERY, tools=tools, tool_choice="required",
                                            max_tokens=64, stream=True, **SAMPLED)
    order, streamed, names, arguments = [], "", {}, {}
    for chunk in stream:
        if not chunk.choices:
            continue
        delta = chunk.choices[0].delta
        if (delta.model_extra or {}).get("reasoning_content"):
            streamed += delta.model_extra["reasoning_content"]
            order.append("thought")
        for call in delta.tool_calls or []:
            order.append("call")
            if call.function and call.function.name:
                names[call.index] = call.function.name
            if call.function and call.function.arguments:
                arguments[call.index] = arguments.get(call.index, "") + call.function.arguments
    assert streamed == thought
    assert order == sorted(order, key=["thought", "call"].index) and "thought" in order  # the thought first
    assert [ToolCall(names[i], json.loads(arguments[i])) for i in sorted(names)] == calls

    # the thought goes back with its turn, as vLLM's and llama.cpp's clients send it
    history = QUERY + [{"role": "assistant", "content": None, "reasoning_content": thought, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": calls[0].name, "arguments": json.dumps(calls[0].arguments)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 72}'}]
    after = client.chat.completions.create(model=model, messages=history, tools=tools, max_tokens=48, **SAMPLED)
    assert validate_calls(calls_of(after.choices[0].message.tool_calls), normalize_tools(tools)) == []


def test_reasoning_effort_none_and_enable_thinking_false_turn_it_off(qwen3_server):
    client = qwen3_server.client()
    tools = MODE
    model = client.models.list().data[0].id
    for extra in ({"reasoning_effort": "none"}, {"extra_body": {"chat_template_kwargs": {"enable_thinking": False}}}):
        off = client.chat.completions.create(model=model, messages=QUERY, tools=tools, tool_choice="required",
                                             max_tokens=48, **SAMPLED, **extra)
        assert "reasoning_content" not in (off.choices[0].message.model_extra or {})
        assert off.usage.completion_tokens_details.reasoning_tokens == 0
        assert calls_of(off.choices[0].message.tool_calls)
    with pytest.raises(Exception) as bad:
        client.chat.completions.create(model=model, messages=QUERY, tools=tools, max_tokens=8,
                                       extra_body={"chat_template_kwargs": {"thinking": True}})
    assert "enable_thinking" in str(bad.value)


def test_the_responses_api_returns_a_reasoning_item_first(qwen3_server):
    client = qwen3_server.client()
    tools = [{"type": "function", **t["function"]} for t in MODE]
    model = client.models.list().data[0].id
    query = QUERY[0]["content"]
    whole = client.responses.create(model=model, input=query, tools=tools, tool_choice="required",
                                    max_output_tokens=64, temperature=1.0)
    kinds = [item.type for item in whole.output]
    assert kinds[0] == "reasoning" and set(kinds[1:]) == {"function_call"}
    thought = whole.output[0].content[0].text

    events = list(client.responses.create(model=model, input=query, tools=tools, tool_choice="required",
                                          max_output_tokens=64, temperature=1.0, stream=True))
    deltas = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    assert deltas == thought
    done = [e for e in events if e.type == "response.output_item.done"]
    assert done[0].output_index == 0 and done[0].item.type == "reasoning"
    assert all(e.output_index >= 1 for e in done[1:])
    final = events[-1].response
    assert [i.type for i in final.output] == kinds

    off = client.responses.create(model=model, input=query, tools=tools, tool_choice="required",
                                  max_output_tokens=48, temperature=1.0, reasoning={"effort": "none"})
    assert [item.type for item in off.output] == ["function_call"] * len(off.output)

    follow = client.responses.create(model=model, previous_response_id=whole.id, tools=tools, max_output_tokens=48,
                                     temperature=1.0, input=[{"type": "function_call_output",
                                                            "call_id": whole.output[1].call_id,
                                                            "output": '{"temperature": 72}'}])
    assert follow.status in ("completed", "incomplete")
