"""`caller.run`: the tool loop on real models (the stand-in, and Qwen2.5-Coder-0.5B, trained for tools),
with Python functions and a real MCP server over stdio. Short budgets and few turns: the loop is what
is tested, not the model's prose."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ondevice import MCPServers, SettingsError, ToolSchemaError

SERVER = Path(__file__).with_name("mcp_server.py")
RAN: list[str] = []


def get_weather(city: str) -> str:
    """The current weather in a city."""
    RAN.append(city)
    if city.lower() == "paris":
        raise ValueError(f"the weather station in {city} is down")
    return f"Sunny and 21 C in {city}"


def get_population(city: str) -> int:
    """How many people live in a city."""
    return 2_100_000


def test_standin_ends_with_text(caller):
    # run() lets a model whose default no_call is the empty list answer in words, so the loop can end
    result = caller.run("Hello! Who are you?", [get_weather, get_population],
                        settings=caller.settings.with_(max_tokens=48))
    assert result.stopped_by == "text" and result.turns == 1 and result.steps == []
    assert result.text.strip() and result.text == result.results[0].message


def test_standin_exception_goes_back_and_max_turns_is_kept(caller):
    RAN.clear()
    result = caller.run("What is the weather in Paris?", [get_weather, get_population], max_turns=1,
                        settings=caller.settings.with_(max_tokens=40, no_call="list"))  # the stand-in must call
    assert result.stopped_by == "max_turns" and result.turns == 1 and len(result.results) == 1
    step = result.steps[0]
    assert step.call.name == "get_weather" and RAN == [step.call.arguments["city"]]
    if step.call.arguments["city"].lower() == "paris":
        assert step.error == "ValueError: the weather station in Paris is down"
        assert step.result == "Error: " + step.error
    # the result is in the conversation as a tool turn, after the answer that made the call
    assert result.messages[-1] == {"role": "tool", "content": step.result}
    assert result.messages[-2]["role"] == "assistant"


def test_bad_arguments_are_refused_before_the_model(caller):
    with pytest.raises(SettingsError, match="max_turns"):
        caller.run("Hi", [get_weather], max_turns=0)
    with pytest.raises(ToolSchemaError, match="nothing to run it"):
        caller.run("Hi", [{"name": "x", "parameters": {"type": "object"}}])
    with pytest.raises(ToolSchemaError, match="two tools are named 'get_weather'"):
        caller.run("Hi", [get_weather, get_weather])


def test_qwen_calls_runs_and_answers(qwen_caller):
    RAN.clear()
    result = qwen_caller.run("What is the weather in Madrid?", [get_weather, get_population], max_turns=3,
                             settings=qwen_caller.settings.with_(max_tokens=48))
    assert [s.call.name for s in result.steps] == ["get_weather"]
    assert result.steps[0].result == "Sunny and 21 C in Madrid" and result.steps[0].error is None
    assert RAN == ["Madrid"]
    assert result.stopped_by == "text" and result.turns == 2 and result.text.strip()


def test_qwen_reads_a_tools_exception_as_its_result(qwen_caller):
    result = qwen_caller.run("What is the weather in Paris?", [get_weather, get_population], max_turns=2,
                             settings=qwen_caller.settings.with_(max_tokens=48))
    first = result.steps[0]
    assert first.call.name == "get_weather" and first.error == "ValueError: the weather station in Paris is down"
    # the model's next prompt holds the error as the tool's result
    prompt = qwen_caller.render(result.messages)
    assert "<tool_response>\nError: ValueError: the weather station in Paris is down\n</tool_response>" in prompt
    assert result.turns <= 2 and result.stopped_by in ("text", "max_turns")


def test_qwen_mcp_loop_to_a_final_answer(qwen_caller):
    with MCPServers.from_config({"mcpServers": {"shop": {"command": sys.executable, "args": [str(SERVER)]}}}) as shop:
        asked = []
        result = qwen_caller.run("What is the price of the ACME stock?", [shop], max_turns=3,
                                 settings=qwen_caller.settings.with_(max_tokens=48),
                                 confirm=lambda call: asked.append(call.name) or True)
    assert [s.call.name for s in result.steps] == ["get_stock_price"] == asked
    assert result.steps[0].result == '{"result": "ACME trades at 123.25 USD"}'  # the structured content
    assert result.stopped_by == "text" and result.text.strip()


def test_standin_declined_call_is_not_run(caller):
    RAN.clear()
    result = caller.run("What is the weather in Rome?", [get_weather], max_turns=1, confirm=lambda call: False,
                        settings=caller.settings.with_(max_tokens=40, no_call="list"))
    assert RAN == [] and result.steps and all(s.error.startswith("declined") for s in result.steps)
    assert result.messages[-1] == {"role": "tool", "content": result.steps[-1].result}


def test_a_budget_that_ends_inside_the_first_call_says_so(qwen_caller):
    result = qwen_caller.run("What is the weather in Madrid?", [get_weather], max_turns=2,
                             settings=qwen_caller.settings.with_(max_tokens=8))
    assert result.stopped_by == "max_tokens" and result.steps == [] and result.results[0].truncated
