"""`ondevice serve` on a model in its native tool format (Qwen2.5-Coder-0.5B-Instruct, its manifest
default): OpenAI messages go to the model's own template (assistant tool_calls, tool results), and
the answer's <tool_call> blocks come back as tool_calls, streamed and not."""

from __future__ import annotations

import json

from .conftest import QWEN, openai_tools

QUERY = "What's the weather like in New York in fahrenheit?"


def test_native_format_over_the_api(qwen_server):
    client = qwen_server.client()
    tools = openai_tools("simple")
    user = {"role": "user", "content": QUERY}
    answer = client.chat.completions.create(model=QWEN, messages=[user], tools=tools, tool_choice="required",
                                            max_tokens=80)
    calls = answer.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"
    assert json.loads(calls[0].function.arguments)["location"]
    assert answer.choices[0].finish_reason == "tool_calls"

    streamed: dict[int, list[str]] = {}
    for chunk in client.chat.completions.create(model=QWEN, messages=[user], tools=tools, tool_choice="required",
                                                 max_tokens=80, stream=True):
        for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
            streamed.setdefault(delta.index, []).append(delta.function.arguments or "")
    assert ["".join(streamed[i]) for i in sorted(streamed)] == [c.function.arguments for c in calls]

    history = [user, {"role": "assistant", "content": None, "tool_calls": [c.model_dump() for c in calls]},
               {"role": "tool", "tool_call_id": calls[0].id, "content": '{"temperature": 72, "unit": "fahrenheit"}'}]
    after = client.chat.completions.create(model=QWEN, messages=history, tools=tools, max_tokens=60)
    message = after.choices[0].message
    # The same call again is refused (its result is in the conversation): the model answers in text.
    assert not message.tool_calls, message.tool_calls
    assert message.content and message.content.strip() and after.choices[0].finish_reason == "stop"
