"""The llama3 tool format: Llama 3.x's own chat template (tools in the first user turn, results in the
``ipython`` role) and its bare ``{"name": ..., "parameters": {...}}`` call, one a turn.

The model is a tiny random-weight Llama with the real Llama 3 tokenizer and the real Llama 3.2 chat
template (`tiny_llama3`): it writes nonsense inside the grammar, so these tests check the format, the
guarantee and the round trip, not accuracy.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import BudgetError, ToolChoiceError
from ondevice.formats import get_format
from ondevice.formats.blocks import ToolCall, validate_calls
from ondevice.formats.grammar import tool_call_lark
from ondevice.formats.prompt import prepare_messages, template_tools
from ondevice.formats.stream import ToolCallReader, split_calls, CallStart
from ondevice.grammar.calls import CallOptions
from ondevice.schema.tools import normalize_tools
from ondevice.settings import LLAMA3
from ondevice.template.chat_template import ChatTemplate

from ..common import batch_texts, EXAMPLE_NAMES, PINNED_DATE, SHARED, load_example

WEATHER = [{"name": "get_weather", "description": "Get the weather",
            "parameters": {"type": "object", "properties": {"location": {"type": "string"},
                                                            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
                           "required": ["location"]}}]
CALL = '{"name": "get_weather", "parameters": {"location": "Paris", "unit": "celsius"}}'
TEMPLATE = SHARED / "fixtures" / "chat-templates" / "llama-3.2.jinja"


# --- the format without a model ------------------------------------------------------------------

@pytest.mark.nomodel
def test_a_llama3_answer_parses_into_its_call():
    fmt = get_format(LLAMA3)
    assert fmt.parse(CALL) == [ToolCall("get_weather", {"location": "Paris", "unit": "celsius"})]
    assert fmt.parse("It is sunny.") == []  # a plain reply
    assert fmt.parse(CALL + " and more") is None and fmt.parse('{"name": "x"}') is None
    assert fmt.complete_calls(CALL) == [({"name": "get_weather", "arguments": {"location": "Paris", "unit": "celsius"}},
                                         len(CALL))]
    assert fmt.close_text(CALL[:-3]) == "" and fmt.close_text(CALL) == CALL and fmt.close_text(CALL, 0) == ""


@pytest.mark.nomodel
@pytest.mark.parametrize("options", [CallOptions(tool_format=LLAMA3), CallOptions(no_call="text", tool_format=LLAMA3),
                                     CallOptions(min_calls=1, tool_format=LLAMA3),
                                     CallOptions(max_calls=0, no_call="text", tool_format=LLAMA3)])
def test_the_llama3_grammar_admits_its_call_and_no_more(options):
    from llguidance import LLMatcher

    lark = tool_call_lark(normalize_tools(WEATHER), options)
    assert LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(lark)) == ""
    assert '"parameters"' in lark if options.max_calls != 0 else "call_0" not in lark


@pytest.mark.nomodel
def test_more_than_one_required_call_is_a_clear_error():
    with pytest.raises(ToolChoiceError, match="one call a turn"):
        tool_call_lark(normalize_tools(WEATHER), CallOptions(min_calls=2, tool_format=LLAMA3))


@pytest.mark.nomodel
def test_the_stream_reader_follows_a_llama3_call():
    fmt = get_format(LLAMA3)
    reader = ToolCallReader(fmt)
    events = [e for i in range(0, len(CALL), 3) for e in reader.feed(CALL[i:i + 3])]
    assert events[0] == CallStart(0, "get_weather")
    assert "".join(e.text for e in events[1:]) == '{"location": "Paris", "unit": "celsius"}'
    assert split_calls("It is sunny {", fmt) == []


@pytest.mark.nomodel
def test_the_llama_template_renders_an_answer_as_the_model_writes_it():
    """History round trip: the answer's turn, rendered by the real Llama 3.2 template, is the text the
    grammar lets the model write, and parses back into the same call; a tool result is an ipython turn."""
    fmt = get_format(LLAMA3)
    template = ChatTemplate(TEMPLATE.read_text(), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    calls = fmt.parse(CALL)
    from ondevice.formats.result import CallResult

    turn = fmt.answer_turn(CallResult(calls=calls, text=CALL, finish_reason="stop"))
    messages = prepare_messages("Weather in Paris?", WEATHER, None, LLAMA3) + [turn, {"role": "tool", "content": "18C"}]
    text = template.render(messages, tools=template_tools(WEATHER, LLAMA3), date_string=PINNED_DATE)
    assert "<|start_header_id|>assistant<|end_header_id|>\n\n" + CALL + "<|eot_id|>" in text
    # a string is iterable to Jinja: the template writes it through tojson, quoted (as transformers does)
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"18C"<|eot_id|>' in text
    assert 'Respond in the format {"name": function name, "parameters": dictionary' in text
    assert fmt.parse(text.split("assistant<|end_header_id|>\n\n")[1].split("<|eot_id|>")[0]) == calls


# --- on a tiny random Llama with the real tokenizer and template -------------------------------------

@pytest.fixture(scope="module")
def tiny_llama3(tiny_llama_gguf: Path) -> ToolCaller:
    settings = Settings(date_string=PINNED_DATE, n_ctx=4096, n_threads=1, max_tokens=48, tool_format=LLAMA3,
                        n_parallel=2)
    with ToolCaller.load(str(tiny_llama_gguf), settings) as caller:
        yield caller


def assert_valid(result, tools) -> None:
    assert result.calls is not None, result.text
    assert len(result.calls) <= 1, result.text
    assert validate_calls(result.calls, normalize_tools(tools)) == [], result.text
    if result.calls:
        assert get_format(LLAMA3).parse(result.text) == result.calls


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_gets_a_valid_llama3_answer(tiny_llama3, name):
    tools, case = load_example(name)
    for query in case["queries"]:
        for no_call in ("list", "text"):
            result = tiny_llama3.call(query, tools, settings=tiny_llama3.settings.with_(no_call=no_call))
            assert_valid(result, tools)
        if tools:  # a random model may ramble in a string past any budget: then a clear BudgetError
            try:
                required = tiny_llama3.call(query, tools, options=CallOptions(min_calls=1),
                                            settings=tiny_llama3.settings.with_(max_tokens=160))
            except BudgetError as exc:
                assert "raise max_tokens" in str(exc)
                continue
            assert_valid(required, tools)
            assert len(required.calls) == 1 and required.text.startswith('{"name": ')


def test_streamed_pieces_add_up_to_the_llama3_call(tiny_llama3):
    tools, case = load_example("simple")
    pieces: list[str] = []
    result = tiny_llama3.call(case["queries"][0], tools, options=CallOptions(min_calls=1), on_text=pieces.append)
    assert "".join(pieces) == result.text
    streamed = split_calls("".join(pieces), get_format(LLAMA3))
    assert [(name, json.loads(arguments)) for name, arguments in streamed] == \
        [(c.name, c.arguments) for c in result.calls]


def test_a_llama3_batch_equals_the_same_requests_alone(tiny_llama3):
    batch = [(load_example(name)[0], load_example(name)[1]["queries"][0]) for name in ("simple", "multiple")]
    alone = [tiny_llama3.call(query, tools).text for tools, query in batch]
    s = tiny_llama3.settings
    assert batch_texts(tiny_llama3, batch, s) == alone


def test_a_llama3_conversation_renders_its_call_and_the_result(tiny_llama3):
    conversation = tiny_llama3.conversation(WEATHER)
    first = conversation.ask("What's the weather in Paris?", tiny_llama3.settings.with_(no_call="list"))
    assert_valid(first, WEATHER)
    conversation.add_tool_result('{"temperature": 18}')
    text, _ = tiny_llama3.tokenize_prompt(conversation.messages, tools=template_tools(WEATHER, LLAMA3))
    if first.calls:
        assert "<|start_header_id|>assistant<|end_header_id|>\n\n" + first.text + "<|eot_id|>" in text
    assert '<|start_header_id|>ipython<|end_header_id|>\n\n"{\\"temperature\\": 18}"<|eot_id|>' in text
    assert_valid(conversation.reply(), WEATHER)


def test_jsonschemabench_tools_get_valid_llama3_calls(tiny_llama3):
    """Real-world schemas as tool parameters, a call required: every answer is one valid call, or the
    schema is refused before decoding with an error naming what to change."""
    import jsonschema

    from ondevice.errors import BudgetError, ToolSchemaError

    folder = SHARED / "fixtures" / "jsonschemabench"
    if not folder.is_dir():
        pytest.skip("../shared/fixtures/jsonschemabench is not beside the checkout")
    answered = 0
    for name in ("Glaiveai2K", "Github_easy", "Github_medium", "Github_hard"):
        schemas = json.loads((folder / f"{name}.json").read_text())
        for key in sorted(schemas)[:3]:
            tool = {"name": "record", "description": "Record one item", "parameters": schemas[key]}
            try:
                result = tiny_llama3.call("Record an example item.", [tool], options=CallOptions(min_calls=1),
                                          settings=tiny_llama3.settings.with_(max_tokens=160))
            except ToolSchemaError as exc:  # a schema no grammar can hold (measured: 1 of 12, unsatisfiable)
                assert "schema" in str(exc), str(exc)
                continue
            except BudgetError as exc:  # random weights ramble inside a string (measured: 6 of 12 at 160 tokens)
                assert "raise max_tokens" in str(exc), str(exc)
                optional = tiny_llama3.call("Record an example item.", [tool])  # a cut answer closes validly
                assert_valid(optional, [tool])
                continue
            assert [c.name for c in result.calls] == ["record"], result.text
            jsonschema.validate(result.calls[0].arguments, schemas[key])
            answered += 1
    assert answered >= 4, answered  # measured: 5 of 12


def test_a_named_format_brings_its_own_no_call_default(tiny_llama3):
    # The GGUF alone is the card's (the fine-tune's template): "no call" is the empty list there. Named
    # llama3, a plain Llama 3.x Instruct answers "no tool fits" in words, as every template format does.
    assert tiny_llama3.default_tool_format == "card"
    assert tiny_llama3.default_no_call == "text"
    engine = tiny_llama3.engine
    assert engine.options_for(tiny_llama3.settings).no_call == "text"
    assert engine.options_for(tiny_llama3.settings.with_(tool_format="card")).no_call == "list"
    assert engine.options_for(tiny_llama3.settings.with_(no_call="list")).no_call == "list"  # the setting wins
