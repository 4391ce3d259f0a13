"""Hostile input through the Python API (issue 27): the server's three, and their siblings, end in an
OndeviceError naming the part at fault, before anything reaches the model; the caller answers after."""

from __future__ import annotations

import json

import pytest

import ondevice
from ondevice.errors import InputLimitError, OndeviceError, QueryError, ToolSchemaError
from ondevice.structured import OutputSchemaError

from .common import EXAMPLES, nest_objects

QUERY = "What's the weather like in New York in fahrenheit?"


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth - 1):
        value = [value]
    return value


def tool(name: str = "get_weather", description: str = "The weather", parameters: dict | None = None) -> dict:
    return {"name": name, "description": description, "parameters": parameters or {"type": "object", "properties": {}}}


def answered(arguments: object) -> list:
    """A native-layout history whose assistant turn called get_weather with `arguments`."""
    return [{"role": "user", "content": "weather?"},
            {"role": "assistant", "content": "", "tool_calls": [
                {"type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
            {"role": "tool", "content": "72"}]


@pytest.mark.parametrize("kwargs, error, message", [
    # the server's three
    ({"tools": deep_list(10_000)}, InputLimitError, "tool #0: its definition nests 9999 levels deep"),
    ({"tools": [tool("deep", parameters=nest_objects(200))]}, InputLimitError,
     "tool 'deep': its definition nests 402 levels deep, the limit is 64 (setting max_schema_depth"),
    ({"query": "weather in \ud800"}, QueryError, "the query is not valid UTF-8 text"),
    # their siblings
    ({"history": [{"role": "user", "content": "\ud800"}]}, QueryError,
     "history[0].content holds text that is not valid UTF-8"),
    ({"tools": [tool(description="\udfff")]}, ToolSchemaError, "tools[0].description holds text that is not valid UTF-8"),
    ({"tools": [tool(parameters={"type": "object", "properties": {"x": {"maximum": float("nan")}}})]},
     ToolSchemaError, "tools[0].parameters.properties.x.maximum holds the number nan"),
    ({"history": answered(json.dumps({"city": "\ud800"}, ensure_ascii=True))}, QueryError,
     "history[1].tool_calls[0].function.arguments: city holds text"),
    ({"history": answered("[" * 10_000 + "]" * 10_000)}, InputLimitError,
     "history[1].tool_calls[0].function.arguments nests too deeply to read"),
    ({"history": answered(nest_objects(50))}, InputLimitError,
     "history[1].tool_calls[0].function.arguments nests 101 levels deep, the limit is 64"),
])
def test_hostile_call_is_a_clear_error(caller, kwargs, error, message):
    args = {"query": QUERY, "tools": [tool()], **kwargs}
    with pytest.raises(error) as raised:
        caller.call(args.pop("query"), args.pop("tools"), args.pop("history", None))
    assert isinstance(raised.value, OndeviceError) and message in str(raised.value)


def test_hostile_messages_and_schemas(caller):
    with pytest.raises(QueryError, match=r"messages\[1\]\.content holds text that is not valid UTF-8"):
        caller.call_messages([{"role": "system", "content": "s"}, {"role": "user", "content": "\ud800"}])
    with pytest.raises(InputLimitError, match=r"response format 'response': its schema nests 401 levels deep"):
        caller.generate_json(QUERY, nest_objects(200))
    with pytest.raises(OutputSchemaError, match=r"schema\.description holds text that is not valid UTF-8"):
        caller.generate_json(QUERY, {"type": "string", "description": "\ud800"})
    with pytest.raises(InputLimitError, match="its definition nests 402 levels deep, the limit is 100"):
        ondevice.normalize_tools([tool("deep", parameters=nest_objects(200))])  # public, settings or not


def test_the_caller_answers_after_hostile_input(caller):
    for query, tools in (("\ud800", []), (QUERY, [tool("deep", parameters=nest_objects(200))])):
        with pytest.raises(OndeviceError):
            caller.call(query, tools)
    tools = json.loads((EXAMPLES / "simple" / "tools.json").read_text())
    result = caller.call(QUERY, tools, settings=caller.settings.with_(max_tokens=48))
    assert result.calls is not None or result.truncated
