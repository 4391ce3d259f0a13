"""Every template format end to end on a random-weight model: the tiny Llama 3.2 (real Llama 3 tokenizer)
carrying each family's real template (`chat_template`), the format named. Its weights are random, so
these tests check the guarantee and the round trip, not the choices:

- every answer to the card's examples and to a JSONSchemaBench sample is valid (calls that name a given
  tool with arguments valid for its schema, or no call where none is required), or, where a call is
  required, a clear error before or after decoding (a schema the format cannot write; a budget the
  random model's endless string ran out);
- the streamed text adds up to the answer, and the format's stream reader to its calls;
- ``parse(render(calls)) == calls``: the calls written back through the template read as themselves;
- a batch equals the same requests alone.
"""

from __future__ import annotations

import json
import os

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import BudgetError, ToolSchemaError
from ondevice.formats import get_format
from ondevice.formats.blocks import ToolCall, validate_calls
from ondevice.formats.prompt import prepare_messages, template_tools
from ondevice.formats.reasoning import thinking_block
from ondevice.formats.stream import split_calls
from ondevice.grammar.calls import CallOptions
from ondevice.schema.tools import normalize_tools
from ondevice.settings import (FUNCTIONGEMMA, LLAMA3, MINISTRAL3, MISTRAL, NATIVE, PHI4_MINI, PYTHONIC, XLAM)

from ..common import batch_texts, EXAMPLE_NAMES, PINNED_DATE, SHARED, load_example

TEMPLATES = SHARED / "fixtures" / "chat-templates"
FORMATS = {NATIVE: "qwen2.5.jinja", LLAMA3: "llama-3.2.jinja", XLAM: "xlam-2.jinja",
           PHI4_MINI: "phi-4-mini.llama-cpp.jinja", MISTRAL: "mistral-nemo.jinja", MINISTRAL3: "ministral-3.jinja",
           PYTHONIC: "lfm2.jinja", FUNCTIONGEMMA: "functiongemma.jinja"}
MODE = [{"name": "set_mode", "description": "Set the thermostat mode",
         "parameters": {"type": "object", "properties": {
             "mode": {"type": "string", "enum": ["heat", "cool", "off"]}, "fan": {"type": "boolean"},
             "level": {"type": "integer", "minimum": 1, "maximum": 5}}, "required": ["mode", "fan"]}}]
WARM = "Warm the house up, please."
REQUIRED = CallOptions(min_calls=1)


@pytest.fixture(scope="module", params=list(FORMATS))
def random_caller(request, tiny_llama_gguf) -> ToolCaller:
    name = request.param
    settings = Settings(date_string=PINNED_DATE, n_ctx=4096, n_threads=1, n_parallel=2, max_tokens=64,
                        tool_format=name, chat_template=(TEMPLATES / FORMATS[name]).read_text(), reasoning_budget=8)
    with ToolCaller.load(str(tiny_llama_gguf), settings) as caller:
        yield caller


def sampled(caller: ToolCaller, seed: int) -> Settings:
    return caller.settings.with_(temperature=1.0, seed=seed)


def assert_valid(caller: ToolCaller, result, tools) -> None:
    assert result.calls is not None, result.text
    assert validate_calls(result.calls, normalize_tools(tools)) == [], result.text
    if result.calls:
        assert get_format(caller.tool_format()).parse(result.text) == result.calls, result.text


def required_or_clear_error(caller: ToolCaller, query: str, tools, settings=None):
    """The required answer, or None after an error that says what to do."""
    try:
        return caller.call(query, tools, options=REQUIRED, settings=settings)
    except BudgetError as exc:
        assert "raise max_tokens" in str(exc)
    except ToolSchemaError as exc:
        assert "tool" in str(exc) and "--tool-format" in str(exc) or "schema" in str(exc), str(exc)
    return None


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_the_card_examples_get_valid_answers(random_caller, example):
    tools, case = load_example(example)
    for query in case["queries"]:
        assert_valid(random_caller, random_caller.call(query, tools), tools)
        if tools:
            result = required_or_clear_error(random_caller, query, tools)
            if result is not None:
                assert result.calls
                assert_valid(random_caller, result, tools)


def test_a_jsonschemabench_sample_gets_valid_calls(random_caller):
    import jsonschema

    folder = SHARED / "fixtures" / "jsonschemabench"
    if not folder.is_dir():
        pytest.skip("../shared/fixtures/jsonschemabench is not beside the checkout")
    for name in ("Glaiveai2K", "Github_easy", "Github_medium", "Github_hard"):
        schemas = json.loads((folder / f"{name}.json").read_text())
        for key in sorted(schemas)[:2]:
            tool = {"name": "record", "description": "Record one item", "parameters": schemas[key]}
            result = required_or_clear_error(random_caller, "Record an example item.", [tool],
                                             settings=sampled(random_caller, 5))
            if result is not None:
                assert result.calls and {c.name for c in result.calls} == {"record"}, result.text
                for call in result.calls:
                    jsonschema.validate(call.arguments, schemas[key])


def test_streamed_text_and_calls_add_up_and_read_back_through_the_template(random_caller):
    fmt = get_format(random_caller.tool_format())
    for seed in range(4):
        pieces: list[str] = []
        result = random_caller.call(WARM, MODE, options=REQUIRED, settings=sampled(random_caller, seed),
                                    on_text=pieces.append)
        assert "".join(pieces) == result.text
        assert_valid(random_caller, result, MODE)
        assert [(n, json.loads(a)) for n, a in split_calls(result.text, fmt)] == \
            [(c.name, c.arguments) for c in result.calls]
        # parse(render(calls)) == calls: the answer as the template writes it back reads as the same calls
        messages = prepare_messages(WARM, MODE, None, fmt.name)
        head = random_caller.render(messages, tools=template_tools(MODE, fmt.name))
        whole = random_caller.render(messages + [fmt.answer_turn(result)], tools=template_tools(MODE, fmt.name))
        tail = whole[len(os.path.commonprefix([head, whole])):].strip()
        block = thinking_block((TEMPLATES / FORMATS[fmt.name]).read_text())
        if block is not None and tail.startswith(block.open):  # the thought, written back before the calls
            assert result.reasoning is not None and result.reasoning in tail
            tail = tail[block.ended(tail):].strip()
        back = [ToolCall(v["name"], v.get("arguments", v.get("parameters"))) for v, _ in fmt.complete_calls(tail)]
        assert back[:len(result.calls)] == [ToolCall(c.name, c.arguments) for c in result.calls], tail


def test_a_batch_equals_the_same_requests_alone(random_caller):
    s = sampled(random_caller, 3)
    batch = [(MODE, WARM), (load_example("simple")[0], "Weather in Oslo?")]
    alone = [random_caller.call(query, tools, settings=s).text for tools, query in batch]
    assert batch_texts(random_caller, batch, s) == alone
