"""A real agent framework (the OpenAI Agents SDK, from PyPI) runs a two-tool agent against `ondevice serve`
on Qwen2.5-Coder-0.5B to a final text answer: with its Chat Completions model and its default Responses
model. Loopback only, bounded (max_turns, max_tokens, the client's timeout)."""

from __future__ import annotations

import pytest

from .conftest import API_KEY, QWEN

agents = pytest.importorskip("agents")
QUERY = "What is the weather in Paris right now?"


def run_agent(url: str, model_kind: str) -> tuple[object, list[str]]:
    from openai import AsyncOpenAI

    agents.set_tracing_disabled(True)  # no trace export: nothing leaves the machine
    called: list[str] = []

    @agents.function_tool
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        called.append("get_weather")
        return f"Sunny, 22 degrees Celsius in {city}."

    @agents.function_tool
    def get_time(city: str) -> str:
        """The local time in a city."""
        called.append("get_time")
        return f"It is 14:05 in {city}."

    client = AsyncOpenAI(base_url=url, api_key=API_KEY, max_retries=0, timeout=300)
    model_class = agents.OpenAIChatCompletionsModel if model_kind == "chat" else agents.OpenAIResponsesModel
    agent = agents.Agent(name="assistant", instructions="Answer with the tools' results, briefly.",
                         tools=[get_weather, get_time], model=model_class(model=QWEN, openai_client=client),
                         model_settings=agents.ModelSettings(max_tokens=120))
    try:
        return agents.Runner.run_sync(agent, QUERY, max_turns=4), called
    except agents.exceptions.MaxTurnsExceeded:
        return None, called


@pytest.mark.parametrize("model_kind", ["chat", "responses"])
def test_two_tool_agent_reaches_a_text_answer(qwen_server, model_kind):
    result, called = run_agent(qwen_server.url, model_kind)
    assert called and called[0] == "get_weather"
    if result is None and len(called) >= 2:  # max_turns ran out: the model kept calling after the tool's result
        pytest.xfail(f"NEEDS-REPEAT-FIX (issue 22 item 2): after the tool's result the model called again: {called}")
    assert result is not None, f"max_turns ran out after the calls {called}"
    assert isinstance(result.final_output, str) and result.final_output.strip()
