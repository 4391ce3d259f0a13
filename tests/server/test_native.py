"""`ondevice serve` on a model in its native tool format (Qwen2.5-Coder-0.5B-Instruct, its manifest
default): OpenAI messages go to the model's own template (assistant tool_calls, tool results), and
the answer's <tool_call> blocks come back as tool_calls, streamed and not."""

from __future__ import annotations

import json

import pytest

from .conftest import API_KEY, Server, openai_tools

QWEN = "qwen2.5-coder-0.5b-instruct"
QUERY = "What's the weather like in New York in fahrenheit?"


def test_native_format_over_the_api(ondevice_home):
    server = Server("--model", QWEN, "--api-key", API_KEY)  # --parallel 1 by default: a sentence (no_call text) is not batched
    try:
        client = server.client()
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
        assert message.tool_calls or isinstance(message.content, str)
    finally:
        code, stderr = server.stop()
        assert code == 0, stderr


def test_serve_decodes_one_at_a_time_for_a_model_that_answers_no_call_with_a_sentence():
    from ondevice.cli import build_parser
    from ondevice.cli.serve import DEFAULT_PARALLEL, _parallel
    from ondevice.errors import OndeviceError

    parse = build_parser().parse_args
    assert _parallel(parse(["serve", "--model", QWEN])) == 1  # its manifest: no_call text
    from ondevice.models import resolve

    # by its path (no manifest): its chat template shows a native model, whose no_call default is text
    assert _parallel(parse(["serve", "--model", str(resolve(QWEN).path)])) == 1
    assert _parallel(parse(["serve", "--model", QWEN, "--no-call", "list"])) == DEFAULT_PARALLEL
    assert _parallel(parse(["serve", "--model", QWEN, "--no-call", "list", "--parallel", "2"])) == 2
    assert _parallel(parse(["serve"])) == DEFAULT_PARALLEL  # the stand-in (or the fine-tune): no_call list
    with pytest.raises(OndeviceError, match=r"--parallel 4: batched decoding answers \"no call\" with an empty list, "
                                            r"but no_call is 'text' for qwen2.5-coder-0.5b-instruct: pass --parallel 1"):
        _parallel(parse(["serve", "--model", QWEN, "--parallel", "4"]))
