"""LangChain (langchain-openai's ChatOpenAI, from PyPI) against `ondevice serve` on Qwen2.5-Coder-0.5B,
loopback: tools bound with tool_choice "required" and strict schemas, structured output by json_schema
and by function_calling, and a tool loop on the Responses API continued by previous_response_id."""

from __future__ import annotations

import pytest

from .conftest import API_KEY, QWEN

pytest.importorskip("langchain_openai", reason="pip install langchain-openai")

from langchain_core.messages import HumanMessage, ToolMessage  # noqa: E402
from langchain_core.tools import tool  # noqa: E402
from langchain_openai import ChatOpenAI  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

REPORT = "Paris today: sunny, 22 degrees Celsius. Extract the weather."


@tool
def get_weather(city: str) -> str:
    """The current weather in a city."""
    return f"Sunny, 22 degrees Celsius in {city}."


@tool
def get_time(city: str) -> str:
    """The local time in a city."""
    return f"It is 14:05 in {city}."


class Weather(BaseModel):
    """The weather in a city."""

    city: str = Field(description="the city")
    celsius: int = Field(description="the temperature in degrees Celsius")


def chat_model(url: str, **kwargs) -> ChatOpenAI:
    return ChatOpenAI(base_url=url, api_key=API_KEY, model=QWEN, max_tokens=60, temperature=0, max_retries=0,
                      timeout=300, **kwargs)


def test_bind_tools_required_and_strict(qwen_server):
    llm = chat_model(qwen_server.url).bind_tools([get_weather, get_time], tool_choice="required", strict=True)
    message = llm.invoke("What is the weather in Paris?")
    assert [call["name"] for call in message.tool_calls] == ["get_weather"], message
    assert message.tool_calls[0]["args"] == {"city": "Paris"}


@pytest.mark.parametrize("method", ["json_schema", "function_calling"])
def test_structured_output(qwen_server, method):
    weather = chat_model(qwen_server.url).with_structured_output(Weather, method=method).invoke(REPORT)
    assert weather == Weather(city="Paris", celsius=22)


def test_tool_loop_on_responses_continues_by_previous_response_id(qwen_server):
    """use_previous_response_id: the second turn sends only the tool's result, and the server puts the
    first turn (stored) before it."""
    llm = chat_model(qwen_server.url, use_responses_api=True, use_previous_response_id=True)
    bound = llm.bind_tools([get_weather, get_time])
    messages = [HumanMessage("What is the weather in Paris?")]
    first = bound.invoke(messages)
    assert [call["name"] for call in first.tool_calls] == ["get_weather"], first
    call = first.tool_calls[0]
    messages += [first, ToolMessage(get_weather.invoke(call["args"]), tool_call_id=call["id"])]
    final = bound.invoke(messages)
    assert not final.tool_calls and final.text.strip(), final  # the answered call is not made again
    stored = qwen_server.client().responses.retrieve(final.response_metadata["id"])
    assert stored.previous_response_id == first.response_metadata["id"]
