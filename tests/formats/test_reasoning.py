"""Reasoning models: the thought is decoded free before the answer (only its end is guaranteed, under
a budget), then the calls under the grammar; the thought is never a call.

The model is a tiny random-weight Qwen3 (real Qwen3 tokenizer, real Qwen3 chat template:
`tiny_qwen3_gguf`): it writes nonsense, so these tests check the layout, the guarantee, the budget and
the round trip, not what it thinks.
"""

from __future__ import annotations

import json

import pytest

from ondevice import Settings, ToolCaller
from ondevice.formats import get_format
from ondevice.formats.blocks import validate_calls
from ondevice.formats.reasoning import ThinkingBlock, thinking_block
from ondevice.grammar.calls import CallOptions
from ondevice.schema.tools import normalize_tools
from ondevice.settings import NATIVE
from ondevice.template.chat_template import ChatTemplate

from ..common import SHARED

TEMPLATES = SHARED / "fixtures" / "chat-templates"
QUERY = "What's the weather like in New York in fahrenheit?"
REQUIRED = CallOptions(min_calls=1)


# --- the block, without a model -------------------------------------------------------------------

@pytest.mark.nomodel
def test_the_thinking_block_is_recognized_from_the_template():
    qwen3 = thinking_block((TEMPLATES / "qwen3.jinja").read_text())
    assert qwen3 == ThinkingBlock(switch="enable_thinking")
    deepseek = thinking_block((TEMPLATES / "deepseek-r1-distill-qwen.jinja").read_text())
    assert deepseek is not None and deepseek.switch is None
    for name in ("qwen2.5.jinja", "llama-3.2.jinja", "xlam-2.jinja", "phi-4-mini.llama-cpp.jinja"):
        assert thinking_block((TEMPLATES / name).read_text()) is None, name


@pytest.mark.nomodel
def test_a_growing_thought_is_always_a_prefix_of_the_final_one():
    block = ThinkingBlock()
    text = "<think>\n  Let me see.\n\nThe user wants   weather.\n</think>\n\n"
    final = block.visible(text, final=True)
    assert final == "Let me see.\n\nThe user wants   weather."
    for cut in range(len(text) + 1):
        assert final.startswith(block.visible(text[:cut])), text[:cut]
    assert block.visible("<think>\nabc\n</th") == "abc"  # a partial end marker waits
    assert block.closing("abc") == "\n</think>\n\n" and block.closing("abc\n") == "</think>\n\n"


@pytest.mark.nomodel
def test_reasoning_off_renders_the_templates_own_switch():
    template = ChatTemplate((TEMPLATES / "qwen3.jinja").read_text())
    messages = [{"role": "user", "content": QUERY}]
    assert template.render(messages).endswith("<|im_start|>assistant\n")
    assert template.render(messages, variables={"enable_thinking": False}).endswith(
        "<|im_start|>assistant\n<think>\n\n</think>\n\n")


@pytest.mark.nomodel
def test_an_answer_with_a_thought_goes_back_with_its_reasoning_content():
    from ondevice.formats.result import CallResult
    from ondevice.formats.blocks import ToolCall

    result = CallResult([ToolCall("get_weather", {"location": "New York"})], "", "stop", reasoning="It is a weather question.")
    turn = get_format(NATIVE).answer_turn(result)
    assert turn["reasoning_content"] == "It is a weather question."
    template = ChatTemplate((TEMPLATES / "qwen3.jinja").read_text())
    rendered = template.render([{"role": "user", "content": QUERY}, turn,
                                {"role": "tool", "content": '{"temperature": 72}'}])
    assert "<think>\nIt is a weather question.\n</think>\n\n<tool_call>" in rendered


# --- on the random Qwen3 --------------------------------------------------------------------------
# Sampled (seeded): greedy, the random model repeats its last token, a blank thought. One tool of
# enums and booleans keeps its calls short.

MODE = [{"name": "set_mode", "description": "Set the thermostat mode",
         "parameters": {"type": "object", "properties": {"mode": {"type": "string", "enum": ["heat", "cool", "off"]},
                                                         "fan": {"type": "boolean"}}, "required": ["mode", "fan"]}}]
WARM = "Warm the house up, please."
CLOSING = 3  # "\n", "</think>", "\n\n": forced after the budget


@pytest.fixture(scope="module")
def thinker(tiny_qwen3_gguf):
    settings = Settings(n_ctx=2048, n_parallel=2, reasoning_budget=24, max_tokens=64, temperature=1.0, seed=11)
    with ToolCaller.load(str(tiny_qwen3_gguf), settings) as caller:
        yield caller


def test_the_thought_comes_first_and_free_then_a_valid_call(thinker):
    pieces: list[str] = []
    result = thinker.call(WARM, MODE, options=REQUIRED, on_reasoning=pieces.append)
    assert thinker.tool_format() == NATIVE
    assert result.reasoning and "".join(pieces) == result.reasoning
    assert result.calls and validate_calls(result.calls, normalize_tools(MODE)) == []
    assert "<think>" not in result.text and "</think>" not in result.text  # the answer is the calls alone
    assert 0 < result.timings["reasoning_tokens"] <= 24 + CLOSING


def test_the_budget_forces_the_end_marker(thinker):
    short = thinker.call(WARM, MODE, settings=thinker.settings.with_(reasoning_budget=4), options=REQUIRED)
    assert short.timings["reasoning_tokens"] <= 4 + CLOSING and short.calls
    closed = thinker.call(WARM, MODE, settings=thinker.settings.with_(reasoning_budget=0), options=REQUIRED)
    assert closed.reasoning == "" and closed.calls  # opened, closed at once, then the call


def test_reasoning_off_decodes_no_thought(thinker):
    off = thinker.call(WARM, MODE, settings=thinker.settings.with_(reasoning="off"), options=REQUIRED)
    assert off.reasoning is None and off.timings["reasoning_tokens"] == 0
    assert off.calls and validate_calls(off.calls, normalize_tools(MODE)) == []


def test_a_thinking_batch_equals_the_same_requests_alone(thinker):
    from ondevice.formats.prompt import prepare_messages

    engine, s = thinker.engine, thinker.settings
    queries = [WARM, "Cool it down and run the fan."]
    alone = [thinker.call(q, MODE, options=REQUIRED) for q in queries]
    with thinker.lock:
        sessions = [engine.open(prepare_messages(q, MODE, None, NATIVE), MODE, s, REQUIRED, query=q) for q in queries]
        finished = {}
        while len(finished) < len(sessions):
            for session, error in engine.step():
                assert error is None
                finished[id(session)] = engine.result(session)
    together = [finished[id(x)] for x in sessions]
    assert [(r.reasoning, r.calls) for r in together] == [(r.reasoning, r.calls) for r in alone]
    assert all(r.reasoning for r in alone)


def test_a_follow_up_turn_carries_the_thought_back(thinker):
    from ondevice.formats.prompt import prepare_messages

    first = thinker.call(WARM, MODE, options=REQUIRED)
    assert first.reasoning and first.calls
    fmt = get_format(NATIVE)
    messages = prepare_messages(WARM, MODE, None, NATIVE) + [fmt.answer_turn(first),
                                                              {"role": "tool", "content": '{"ok": true}'}]
    assert messages[-2]["reasoning_content"] == first.reasoning
    rendered = thinker.engine.prompts.render(messages, tools=fmt.template_tools(MODE))
    assert f"<think>\n{first.reasoning}\n</think>\n\n<tool_call>" in rendered  # the template shows it back
    after = thinker.call_messages(messages, MODE)
    assert after.reasoning is not None and validate_calls(after.calls or [], normalize_tools(MODE)) == []


def test_the_cli_says_a_model_thinks_and_returns_the_thought(tiny_qwen3_gguf, tmp_path):
    import subprocess
    import sys

    shown = subprocess.run([sys.executable, "-m", "ondevice", "models", str(tiny_qwen3_gguf)], capture_output=True,
                           text=True, timeout=120)
    assert shown.returncode == 0 and "reasoning: a <think> thought before the calls" in shown.stdout
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps(MODE))
    base = [sys.executable, "-m", "ondevice", "call", WARM, "--tools", str(tools), "--model", str(tiny_qwen3_gguf),
            "--json", "--max-tokens", "64", "--temperature", "1", "--seed", "11", "--no-prefix-cache"]
    on = subprocess.run(base + ["--reasoning-budget", "8"], capture_output=True, text=True, timeout=300)
    assert on.returncode == 0, on.stderr
    result = json.loads(on.stdout)
    assert result["reasoning"] and result["timings"]["reasoning_tokens"] <= 8 + CLOSING
    off = subprocess.run(base + ["--reasoning", "off"], capture_output=True, text=True, timeout=300)
    assert off.returncode == 0, off.stderr
    assert json.loads(off.stdout)["reasoning"] is None
