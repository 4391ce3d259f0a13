"""The pythonic tool format (LFM2): the calls one Python list between ``<|tool_call_start|>`` and
``<|tool_call_end|>``, keyword arguments whose values are Python literals valid against the schema,
parsed with `ast.literal_eval`, never `eval`; LFM2's template renders no calls, so the history carries
them as the model writes them.

The model is Qwen2.5-Coder-0.5B with LFM2's real template (its tags are text in Qwen's vocabulary, and
Qwen was never trained on this layout: the calls are required, the tests check the layout and the
guarantee, not the choices).
"""

from __future__ import annotations

import json

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import ToolSchemaError
from ondevice.formats import get_format
from ondevice.formats.blocks import ToolCall, validate_calls
from ondevice.formats.detect import detect_format
from ondevice.formats.grammar import tool_call_lark
from ondevice.formats.prompt import prepare_messages, template_tools
from ondevice.formats.pythonic import python_call
from ondevice.formats.result import CallResult
from ondevice.formats.stream import CallStart, call_reader, split_calls
from ondevice.grammar.calls import CallOptions
from ondevice.schema.tools import normalize_tools
from ondevice.settings import PYTHONIC
from ondevice.template.chat_template import ChatTemplate

from ..common import EXAMPLE_NAMES, PINNED_DATE, QWEN_ALIAS, SHARED, load_example

TEMPLATE = SHARED / "fixtures" / "chat-templates" / "lfm2.jinja"
TOOLS = [{"name": "set_alarm", "description": "Set an alarm",
          "parameters": {"type": "object", "properties": {
              "time": {"type": "string"}, "repeat": {"type": "boolean"}, "days": {"type": "array", "items": {"type": "string"}},
              "volume": {"type": "integer", "minimum": 0, "maximum": 10}, "label": {"type": ["string", "null"]},
              "snooze": {"type": "object", "properties": {"minutes": {"type": "integer"}, "enabled": {"type": "boolean"}},
                         "required": ["minutes"]}},
              "required": ["time", "repeat"]}},
         {"name": "math.add", "description": "Add", "parameters": {"type": "object", "properties": {
             "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}]
TEXT = ('<|tool_call_start|>[set_alarm(time="07:00", repeat=True, days=["mon", "tue (a)"], label=None, '
        'snooze={"minutes": 5, "enabled": False}), math.add(a=1, b=2.5)]<|tool_call_end|>')
CALLS = [ToolCall("set_alarm", {"time": "07:00", "repeat": True, "days": ["mon", "tue (a)"], "label": None,
                                "snooze": {"minutes": 5, "enabled": False}}),
         ToolCall("math.add", {"a": 1, "b": 2.5})]


@pytest.mark.nomodel
def test_pythonic_calls_parse_without_eval():
    fmt = get_format(PYTHONIC)
    assert fmt.parse(TEXT) == CALLS
    assert fmt.parse("No alarm needed.") == [] and fmt.parse(TEXT[:-5]) is None
    assert fmt.parse('<|tool_call_start|>[set_alarm(time=__import__("os").system("x"))]<|tool_call_end|>') is None
    assert fmt.close_text(TEXT[:-30]) == TEXT[:TEXT.index(", math.add")] + "]<|tool_call_end|>"
    assert fmt.close_text(TEXT, 0) == ""
    assert "".join(python_call(c.name, c.arguments) for c in CALLS[:1]) in TEXT  # what the history writes


@pytest.mark.nomodel
def test_the_stream_reader_sends_each_call_as_json_once_complete():
    fmt = get_format(PYTHONIC)
    assert [(n, json.loads(a)) for n, a in split_calls(TEXT, fmt)] == [(c.name, c.arguments) for c in CALLS]
    reader, events = call_reader(fmt), []
    for ch in TEXT:
        events += reader.feed(ch)
    assert [e.name for e in events if isinstance(e, CallStart)] == ["set_alarm", "math.add"]
    assert [json.loads(e.text) for e in events if not isinstance(e, CallStart)] == [c.arguments for c in CALLS]


@pytest.mark.nomodel
@pytest.mark.parametrize("options", [CallOptions(tool_format=PYTHONIC), CallOptions(no_call="text", tool_format=PYTHONIC),
                                     CallOptions(min_calls=2, max_calls=3, tool_format=PYTHONIC),
                                     CallOptions(max_calls=0, no_call="text", tool_format=PYTHONIC)])
def test_the_pythonic_grammar_admits_python_literals_valid_for_the_schema(options):
    from llguidance import LLMatcher

    lark = tool_call_lark(normalize_tools(TOOLS), options)
    assert LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(lark)) == ""
    if options.max_calls == 0:
        return
    assert accepts(lark, TEXT) == (options.min_calls <= 2)
    assert not accepts(lark, TEXT.replace("repeat=True", "repeat=true"))  # JSON's boolean is not Python's
    assert not accepts(lark, TEXT.replace("volume", "volume").replace('time="07:00", ', ""))  # time is required
    assert accepts(lark, '<|tool_call_start|>[set_alarm(time="7", repeat=False, volume=10)]<|tool_call_end|>') == (
        options.min_calls <= 1)
    assert not accepts(lark, '<|tool_call_start|>[set_alarm(time="7", repeat=False, volume=11)]<|tool_call_end|>')


class _Bytes:
    """A tokenizer of single bytes (and an end token), to run a grammar over text without a model."""

    eos_token_id, bos_token_id = 256, None
    tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]
    special_token_ids = [256]

    def __call__(self, data: bytes) -> list[int]:
        return list(data)


def accepts(lark: str, text: str) -> bool:
    from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

    matcher = LLMatcher(LLTokenizer(TokenizerWrapper(_Bytes())), LLMatcher.grammar_from_lark(lark), log_level=0)
    return matcher.consume_tokens(list(text.encode("utf-8"))) and matcher.is_accepting()


@pytest.mark.nomodel
def test_a_schema_the_format_cannot_write_is_refused_by_name():
    bad = [{"name": "odd", "parameters": {"type": "object", "properties": {"user-id": {"type": "string"}},
                                          "required": ["user-id"]}}]
    with pytest.raises(ToolSchemaError, match="'user-id'.*not Python identifiers"):
        tool_call_lark(normalize_tools(bad), CallOptions(tool_format=PYTHONIC))
    some = [{"name": "some", "parameters": {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "boolean"}},
                                           "minProperties": 1}}]
    with pytest.raises(ToolSchemaError, match="tool 'some'.*Python literals"):
        tool_call_lark(normalize_tools(some), CallOptions(tool_format=PYTHONIC))
    # an optional argument Python cannot name is never written; an open value is written as a string
    fine = [{"name": "fine", "parameters": {"type": "object", "properties": {"user-id": {"type": "string"}, "x": {}}}}]
    lark = tool_call_lark(normalize_tools(fine), CallOptions(tool_format=PYTHONIC))
    assert accepts(lark, '<|tool_call_start|>[fine(x="anything")]<|tool_call_end|>')
    assert not accepts(lark, '<|tool_call_start|>[fine(x=True)]<|tool_call_end|>')


@pytest.mark.nomodel
def test_the_lfm2_template_is_recognized_and_renders_the_calls_back():
    template = TEMPLATE.read_text()
    assert detect_format(template)[0] == PYTHONIC
    fmt = get_format(PYTHONIC)
    turn = fmt.answer_turn(CallResult(calls=CALLS, text=TEXT, finish_reason="stop"))
    messages = prepare_messages("Wake me at 7", TOOLS, None, PYTHONIC) + [turn, {"role": "tool", "content": "ok"}]
    rendered = ChatTemplate(template).render(fmt.template_messages(messages), tools=template_tools(TOOLS, PYTHONIC))
    assert "<|im_start|>assistant\n" + TEXT + "<|im_end|>\n<|im_start|>tool\n<|tool_response_start|>ok" in rendered


# --- on Qwen2.5-Coder with LFM2's template ------------------------------------------------------------

REQUIRED = CallOptions(min_calls=1)


@pytest.fixture(scope="module")
def qwen_lfm2(ondevice_home) -> ToolCaller:
    settings = Settings(date_string=PINNED_DATE, n_ctx=4096, max_tokens=160, tool_format=PYTHONIC,
                        chat_template=TEMPLATE.read_text())
    with ToolCaller.load(QWEN_ALIAS, settings) as caller:
        yield caller


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_gets_valid_pythonic_calls(qwen_lfm2, name):
    tools, case = load_example(name)
    for query in case["queries"]:
        result = qwen_lfm2.call(query, tools, options=REQUIRED if tools else CallOptions())
        assert bool(result.calls) == bool(tools), result.text
        assert validate_calls(result.calls, normalize_tools(tools)) == [], result.text
        assert get_format(PYTHONIC).parse(result.text) == result.calls
        assert [json.loads(c.written_arguments()) for c in result.calls] == [c.arguments for c in result.calls]


def test_booleans_and_nulls_come_out_as_python(qwen_lfm2):
    result = qwen_lfm2.call("Set a repeating alarm for 7am on Monday, volume 3, no label.", TOOLS, options=REQUIRED)
    assert result.calls and validate_calls(result.calls, normalize_tools(TOOLS)) == [], result.text
    assert "true" not in result.text and "false" not in result.text and "null" not in result.text


def test_a_pythonic_conversation_carries_its_calls_back(qwen_lfm2):
    tools, case = load_example("simple")
    conversation = qwen_lfm2.conversation(tools)
    first = conversation.ask(case["queries"][0], qwen_lfm2.settings.with_(no_call="list"))
    if not first.calls:
        pytest.skip("Qwen answered without a call")
    conversation.add_tool_result('{"temperature": 72}')
    fmt = get_format(PYTHONIC)
    shown = ChatTemplate(TEMPLATE.read_text()).render(fmt.template_messages(conversation.messages),
                                                      tools=template_tools(tools, PYTHONIC))
    assert first.text.strip() in shown  # the call, as Qwen wrote it
    after = conversation.reply()
    assert after.calls is not None and validate_calls(after.calls, normalize_tools(tools)) == []


def test_the_server_streams_pythonic_calls_as_openai_tool_calls(ondevice_home):
    from ..server.conftest import API_KEY, Server, openai_tools

    server = Server("--model", QWEN_ALIAS, "--tool-format", PYTHONIC, "--chat-template", str(TEMPLATE),
                    "--api-key", API_KEY)
    try:
        client = server.client()
        tools = openai_tools("parallel")
        query = [{"role": "user", "content": load_example("parallel")[1]["queries"][0]}]
        model = client.models.list().data[0].id
        whole = client.chat.completions.create(model=model, messages=query, tools=tools, tool_choice="required",
                                               max_tokens=160, temperature=0)
        calls = [(c.function.name, json.loads(c.function.arguments)) for c in whole.choices[0].message.tool_calls]
        assert calls and validate_calls([ToolCall(n, a) for n, a in calls], normalize_tools(tools)) == []
        names, arguments = {}, {}
        for chunk in client.chat.completions.create(model=model, messages=query, tools=tools, tool_choice="required",
                                                    max_tokens=160, temperature=0, stream=True):
            for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                if delta.function and delta.function.name:
                    names[delta.index] = delta.function.name
                if delta.function and delta.function.arguments:
                    arguments[delta.index] = arguments.get(delta.index, "") + delta.function.arguments
        assert [(names[i], json.loads(arguments[i])) for i in sorted(names)] == calls
    finally:
        server.stop()


@pytest.mark.nomodel
def test_every_jsonschemabench_schema_compiles_or_is_refused_by_name():
    """The pythonic compiler on real-world schemas: a grammar llguidance takes, or a ToolSchemaError
    that names the tool and says what to change; never a crash or a grammar that fails to build."""
    from llguidance import LLMatcher

    folder = SHARED / "fixtures" / "jsonschemabench"
    if not folder.is_dir():
        pytest.skip("../shared/fixtures/jsonschemabench is not beside the checkout")
    built = refused = 0
    for name in ("Glaiveai2K", "Github_easy", "Github_medium", "Github_hard"):
        schemas = json.loads((folder / f"{name}.json").read_text())
        for key in sorted(schemas):
            tool = {"name": "record", "description": "Record one item", "parameters": schemas[key]}
            try:
                lark = tool_call_lark(normalize_tools([tool]), CallOptions(min_calls=1, tool_format=PYTHONIC))
            except ToolSchemaError as exc:
                assert "record" in str(exc) or "schema" in str(exc), str(exc)
                refused += 1
                continue
            assert LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(lark)) == "", (name, key)
            built += 1
    assert built > refused, (built, refused)


def test_jsonschemabench_tools_get_valid_pythonic_calls(qwen_lfm2):
    """Real-world schemas as tool parameters, a call required: every answer is one valid call, or the
    schema is refused before decoding with an error naming what to change."""
    import jsonschema

    from ondevice.errors import BudgetError

    folder = SHARED / "fixtures" / "jsonschemabench"
    if not folder.is_dir():
        pytest.skip("../shared/fixtures/jsonschemabench is not beside the checkout")
    answered = 0
    for name in ("Glaiveai2K", "Github_easy", "Github_medium", "Github_hard"):
        schemas = json.loads((folder / f"{name}.json").read_text())
        for key in sorted(schemas)[:3]:
            tool = {"name": "record", "description": "Record one item", "parameters": schemas[key]}
            try:
                result = qwen_lfm2.call("Record an example item.", [tool], options=REQUIRED)
            except ToolSchemaError as exc:
                assert "schema" in str(exc) or "record" in str(exc), str(exc)
                continue
            except BudgetError as exc:
                assert "raise max_tokens" in str(exc), str(exc)
                continue
            assert result.calls and {c.name for c in result.calls} == {"record"}, result.text
            for call in result.calls:
                jsonschema.validate(call.arguments, schemas[key])
            answered += 1
    assert answered >= 6, answered  # measured: 9 of 12 (1 budget, 2 refused)


@pytest.mark.parametrize("fmt_name, written, closed", [
    (PYTHONIC, '<|tool_call_start|>[f(a="x"), g(b="', '<|tool_call_start|>[f(a="x")]<|tool_call_end|>'),
    ("mistral", '[TOOL_CALLS][{"name": "f", "arguments": {}}, {"name": "g"',
     '[TOOL_CALLS][{"name": "f", "arguments": {}}]'),
    ("xlam", '[{"name": "f", "arguments": {}}, {"name": "g"', '[{"name": "f", "arguments": {}}]'),
])
def test_a_closed_answer_is_tokenized_as_its_own_text(qwen_lfm2, fmt_name, written, closed):
    """Closing a cut answer keeps the output's own tokens only as far as they spell the closed text: a
    closing that appends text ("]", a tag) must not keep the output's tokens past the last call."""
    model = qwen_lfm2.engine.model
    out = model.tokenize(written, special=False)
    fmt = get_format(fmt_name)
    assert fmt.close_text(written) == closed
    tokens = fmt.closed_tokens(model, out, closed, fmt.plain_markers())
    assert model.detokenize(tokens).decode() == closed
