"""The server names the keywords the grammar relaxed: the `x-ondevice-relaxed` header
(``tool:path:keyword; ...``), on answers and streams; a strict tool is refused with a 400."""

from __future__ import annotations

import json

import openai
import pytest

from ..schema.test_relax import HEADERS
from .conftest import MODEL

QUERY = [{"role": "user", "content": "Fetch https://example.com"}]
TOOLS = [{"type": "function", "function": {"name": "fetch", "description": "Fetch a URL", "parameters": HEADERS}},
         {"type": "function", "function": {"name": "search", "description": "Search", "parameters": {
             "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}}}]
RELAXED = "fetch:parameters.properties.headers:propertyNames"


def test_the_relaxed_keywords_are_named_in_a_header(server):
    client = server.client()
    raw = client.chat.completions.with_raw_response.create(model=MODEL, messages=QUERY, tools=TOOLS, max_tokens=48)
    assert raw.headers["x-ondevice-relaxed"] == RELAXED
    for call in raw.parse().choices[0].message.tool_calls or []:
        json.loads(call.function.arguments)
    with client.chat.completions.with_streaming_response.create(model=MODEL, messages=QUERY, tools=TOOLS,
                                                                max_tokens=48, stream=True) as stream:
        assert stream.headers["x-ondevice-relaxed"] == RELAXED
        list(stream.iter_lines())
    plain = client.chat.completions.with_raw_response.create(model=MODEL, messages=QUERY, tools=TOOLS[1:], max_tokens=8)
    assert "x-ondevice-relaxed" not in plain.headers


def test_a_strict_tool_keeps_the_refusal(server):
    strict = [{"type": "function", "function": {**TOOLS[0]["function"], "strict": True}}]
    with pytest.raises(openai.BadRequestError) as info:
        server.client().chat.completions.create(model=MODEL, messages=QUERY, tools=strict, max_tokens=8)
    assert info.value.body["param"] == "tools" and "'propertyNames'" in info.value.body["message"]
    assert "strict: true" in info.value.body["message"]
