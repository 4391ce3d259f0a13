"""pydantic-ai (from PyPI) against `ondevice serve` on Qwen2.5-Coder-0.5B, loopback: an Agent on an
OpenAI-compatible chat model with two tools and a structured output type (its default tool output: a
final_result tool, so every turn requires a call) runs to a validated output."""

from __future__ import annotations

import pytest

from .conftest import API_KEY, QWEN

pytest.importorskip("pydantic_ai.models.openai", reason="pip install 'pydantic-ai-slim[openai]'")

from pydantic import BaseModel  # noqa: E402
from pydantic_ai import Agent  # noqa: E402
from pydantic_ai.models.openai import OpenAIChatModel  # noqa: E402
from pydantic_ai.providers.openai import OpenAIProvider  # noqa: E402
from pydantic_ai.usage import UsageLimits  # noqa: E402


class Forecast(BaseModel):
    city: str
    celsius: int
    local_time: str


def test_agent_with_two_tools_and_a_structured_output(qwen_server):
    model = OpenAIChatModel(QWEN, provider=OpenAIProvider(base_url=qwen_server.url, api_key=API_KEY))
    agent = Agent(model, output_type=Forecast, instructions="Use the tools, then give the forecast.",
                  model_settings={"max_tokens": 80, "temperature": 0.0})
    called: list[str] = []

    @agent.tool_plain
    def get_weather(city: str) -> str:
        """The current weather in a city."""
        called.append("get_weather")
        return f"Sunny, 22 degrees Celsius in {city}."

    @agent.tool_plain
    def get_time(city: str) -> str:
        """The local time in a city."""
        called.append("get_time")
        return f"It is 14:05 in {city}."

    result = agent.run_sync("What are the weather and the local time in Paris?",
                            usage_limits=UsageLimits(request_limit=5))
    assert sorted(called) == ["get_time", "get_weather"]  # each once: an answered call is not made again
    assert isinstance(result.output, Forecast) and result.output.city == "Paris" and result.output.celsius == 22
