"""`ondevice serve --tool-format llama3` driven by the official OpenAI SDK: Llama 3.x's bare JSON call
comes back as OpenAI `tool_calls`, whole and streamed, and a tool result goes back through the
template's ipython turn. The model is the tiny random-weight Llama (real tokenizer and template)."""

from __future__ import annotations

import json

import pytest

from ondevice.formats.blocks import ToolCall, validate_calls
from ondevice.schema.tools import normalize_tools

from .conftest import API_KEY, Server, openai_tools


@pytest.fixture(scope="module")
def llama3_server(tiny_llama_gguf):
    srv = Server("--model", str(tiny_llama_gguf), "--tool-format", "llama3", "--api-key", API_KEY)
    yield srv
    srv.stop()


def calls_of(tool_calls) -> list[ToolCall]:
    return [ToolCall(c.function.name, json.loads(c.function.arguments)) for c in tool_calls or []]


def test_the_sdk_gets_llama3_calls_whole_and_streamed(llama3_server):
    client = llama3_server.client()
    tools = openai_tools("simple")
    query = [{"role": "user", "content": "What's the weather like in New York in fahrenheit?"}]
    model = client.models.list().data[0].id
    whole = client.chat.completions.create(model=model, messages=query, tools=tools, tool_choice="required",
                                           max_tokens=48, temperature=0)
    calls = calls_of(whole.choices[0].message.tool_calls)
    assert len(calls) == 1 and validate_calls(calls, normalize_tools(tools)) == []
    assert whole.choices[0].finish_reason == "tool_calls"

    stream = client.chat.completions.create(model=model, messages=query, tools=tools, tool_choice="required",
                                            max_tokens=48, temperature=0, stream=True)
    names, arguments = {}, {}
    for chunk in stream:
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            if delta.function and delta.function.name:
                names[delta.index] = delta.function.name
            if delta.function and delta.function.arguments:
                arguments[delta.index] = arguments.get(delta.index, "") + delta.function.arguments
    assert [ToolCall(names[i], json.loads(arguments[i])) for i in sorted(names)] == calls

    history = query + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function",
         "function": {"name": calls[0].name, "arguments": json.dumps(calls[0].arguments)}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 72}'}]
    after = client.chat.completions.create(model=model, messages=history, tools=tools, max_tokens=32, temperature=0)
    assert validate_calls(calls_of(after.choices[0].message.tool_calls), normalize_tools(tools)) == []
