"""The functiongemma format end to end on its random vehicle: a tiny random-weight Gemma 3 (the real
Gemma 3 tokenizer, 262,144 tokens; FunctionGemma's real template) built by `tiny_gemma3_gguf`.

It writes nonsense inside the grammar: a string of its never meets its closing marker (the marker is
three text tokens, which random weights never pick in a row), so the calls that complete use enums,
booleans and bounded integers; the card's examples check the guarantee (a valid answer, or a clear
budget error where a call is required).
"""

from __future__ import annotations

import json

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import BudgetError, ToolChoiceError
from ondevice.formats import get_format
from ondevice.formats.blocks import validate_calls
from ondevice.formats.functiongemma import gemma_call
from ondevice.formats.prompt import template_tools
from ondevice.formats.stream import split_calls
from ondevice.grammar.calls import CallOptions
from ondevice.schema.tools import normalize_tools
from ondevice.settings import FUNCTIONGEMMA

from ..common import batch_texts, EXAMPLE_NAMES, PINNED_DATE, load_example

MODE = [{"name": "set_mode", "description": "Set the thermostat mode",
         "parameters": {"type": "object", "properties": {
             "mode": {"type": "string", "enum": ["heat", "cool", "off"]}, "fan": {"type": "boolean"},
             "level": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["mode", "fan"]}},
        {"name": "stop", "description": "Stop", "parameters": {"type": "object", "properties": {}}}]
WARM = "Warm the house up, please."
REQUIRED = CallOptions(min_calls=1)


@pytest.fixture(scope="module")
def tiny_gemma(tiny_gemma3_gguf) -> ToolCaller:
    settings = Settings(date_string=PINNED_DATE, n_ctx=2048, n_threads=1, n_parallel=2, max_tokens=64)
    with ToolCaller.load(str(tiny_gemma3_gguf), settings) as caller:
        yield caller


def assert_valid(result, tools) -> None:
    assert result.calls is not None, result.text
    assert validate_calls(result.calls, normalize_tools(tools)) == [], result.text
    if result.calls:
        assert get_format(FUNCTIONGEMMA).parse(result.text) == result.calls
        rendered = "".join(gemma_call(c.name, c.arguments) for c in result.calls)  # as the template writes them
        assert get_format(FUNCTIONGEMMA).parse(rendered) == result.calls


def test_the_template_is_detected_and_a_call_comes_out_in_its_layout(tiny_gemma):
    assert tiny_gemma.tool_format() == FUNCTIONGEMMA and tiny_gemma.default_no_call == "text"
    result = tiny_gemma.call(WARM, MODE, options=REQUIRED)
    assert result.calls and result.text.startswith("<start_function_call>call:")
    assert_valid(result, MODE)
    assert tiny_gemma.model.n_vocab == 262_144


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_gets_a_valid_answer(tiny_gemma, name):
    tools, case = load_example(name)
    for query in case["queries"]:
        for no_call in ("list", "text"):
            assert_valid(tiny_gemma.call(query, tools, settings=tiny_gemma.settings.with_(no_call=no_call)), tools)
        if tools:  # a random model never closes a string: then a clear BudgetError
            try:
                required = tiny_gemma.call(query, tools, options=REQUIRED, settings=tiny_gemma.settings.with_(max_tokens=96))
            except BudgetError as exc:
                assert "raise max_tokens" in str(exc)
                continue
            assert required.calls
            assert_valid(required, tools)


def test_sampled_answers_are_valid_and_stream_as_they_parse(tiny_gemma):
    fmt = get_format(FUNCTIONGEMMA)
    for seed in range(6):
        pieces: list[str] = []
        result = tiny_gemma.call(WARM, MODE, options=REQUIRED, on_text=pieces.append,
                                 settings=tiny_gemma.settings.with_(temperature=1.0, seed=seed))
        assert_valid(result, MODE)
        assert "".join(pieces) == result.text
        assert [(n, json.loads(a)) for n, a in split_calls(result.text, fmt)] == [(c.name, c.arguments) for c in result.calls]


def test_a_batch_equals_the_same_requests_alone(tiny_gemma):
    batch = [(MODE, WARM), (load_example("simple")[0], "Weather in Oslo?")]
    s = tiny_gemma.settings.with_(temperature=1.0, seed=3)
    alone = [tiny_gemma.call(query, tools, settings=s).text for tools, query in batch]
    assert batch_texts(tiny_gemma, batch, s) == alone


def test_a_conversation_renders_its_call_and_the_named_result(tiny_gemma):
    for seed in range(8):  # sampled: the first draw that calls (greedy, it answers without one)
        conversation = tiny_gemma.conversation(MODE)
        first = conversation.ask(WARM, tiny_gemma.settings.with_(no_call="list", temperature=1.0, seed=seed))
        if first.calls:
            break
    assert first.calls, first.text
    conversation.add_tool_result("done")
    shown = tiny_gemma.render(conversation.messages, tools=template_tools(MODE, FUNCTIONGEMMA))
    assert first.text + f"<start_function_response>response:{first.calls[-1].name}{{value:<escape>done<escape>}}" in shown
    after = conversation.reply()
    assert_valid(after, MODE)


def test_too_few_calls_after_a_repeated_one_is_a_clear_error(tiny_gemma):
    # Greedy, the random model calls stop{} and then stop{} again: the repeat is dropped, and one call
    # is fewer than the two asked for.
    with pytest.raises(ToolChoiceError, match="repeat"):
        tiny_gemma.call(WARM, MODE, options=CallOptions(min_calls=2))
