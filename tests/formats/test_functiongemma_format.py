"""The functiongemma tool format: each call ``<start_function_call>call:name{key:value,...}<end_function_call>``,
strings between ``<escape>`` markers, bare keys in dictsort order, booleans ``true``/``false``; the
template needs the tool's name on each result.

The model is Qwen2.5-Coder-0.5B with FunctionGemma's real template (the tags are text in Qwen's
vocabulary and Qwen was never trained on this layout: the calls are required, the tests check the
layout and the guarantee, not the choices). The grammar is also run over text with a byte tokenizer
that has FunctionGemma's markers as control tokens, as FunctionGemma's vocabulary does.
"""

from __future__ import annotations

import json

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import ToolSchemaError
from ondevice.formats import get_format
from ondevice.formats.blocks import ToolCall, validate_calls
from ondevice.formats.detect import detect_format
from ondevice.formats.functiongemma import gemma_call
from ondevice.formats.grammar import tool_call_lark
from ondevice.formats.prompt import prepare_messages, template_tools
from ondevice.formats.result import CallResult
from ondevice.formats.stream import CallStart, call_reader, split_calls
from ondevice.grammar.calls import CallOptions, Markers
from ondevice.schema.tools import normalize_tools
from ondevice.settings import FUNCTIONGEMMA
from ondevice.template.chat_template import ChatTemplate

from ..common import batch_texts, EXAMPLE_NAMES, PINNED_DATE, QWEN_ALIAS, SHARED, load_example

TEMPLATE = SHARED / "fixtures" / "chat-templates" / "functiongemma.jinja"
TOOLS = [{"name": "set_alarm", "description": "Set an alarm",
          "parameters": {"type": "object", "properties": {
              "time": {"type": "string", "pattern": "^[0-9]{2}:[0-9]{2}$"}, "repeat": {"type": "boolean"},
              "days": {"type": "array", "items": {"type": "string", "enum": ["mon", "tue {a}, x:"]}},
              "Volume": {"type": "integer", "minimum": 0, "maximum": 10}, "label": {"type": ["string", "null"], "maxLength": 20},
              "snooze": {"type": "object", "properties": {"minutes": {"type": "integer"}, "enabled": {"type": "boolean"}},
                         "required": ["minutes"]}},
              "required": ["time", "repeat"]}},
         {"name": "math.add", "description": "Add", "parameters": {"type": "object", "properties": {
             "a": {"type": "number"}, "b": {"type": "number"}}, "required": ["a", "b"]}}]
TEXT = ('<start_function_call>call:set_alarm{days:[<escape>mon<escape>,<escape>tue {a}, x:<escape>],label:None,'
        'repeat:true,snooze:{enabled:false,minutes:5},time:<escape>07:00<escape>}<end_function_call>'
        '<start_function_call>call:math.add{a:1,b:2.5}<end_function_call>')
CALLS = [ToolCall("set_alarm", {"days": ["mon", "tue {a}, x:"], "label": None, "repeat": True,
                                "snooze": {"enabled": False, "minutes": 5}, "time": "07:00"}),
         ToolCall("math.add", {"a": 1, "b": 2.5})]


@pytest.mark.nomodel
def test_functiongemma_calls_parse_and_write_back_the_same():
    fmt = get_format(FUNCTIONGEMMA)
    assert fmt.parse(TEXT) == CALLS
    assert "".join(gemma_call(c.name, c.arguments) for c in CALLS) == TEXT  # parse(render(calls)) == calls
    assert fmt.parse("No alarm needed.") == [] and fmt.parse(TEXT[:-5]) is None
    assert fmt.parse(TEXT.replace("repeat:true", "repeat:yes")) is None
    assert fmt.close_text(TEXT[:-30]) == TEXT[:TEXT.index("<start_function_call>call:math")]
    assert fmt.close_text(TEXT, 0) == ""


def _strict(text: str):
    def refuse(constant: str):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.nomodel
@pytest.mark.parametrize("fmt_name, text", [
    (FUNCTIONGEMMA, "<start_function_call>call:f{n:3E31314}<end_function_call>"),
    ("pythonic", "<|tool_call_start|>[f(n=-3E31314)]<|tool_call_end|>")])
def test_a_number_past_a_floats_range_streams_as_json(fmt_name, text):
    """The grammar admits any JSON number; one past a float's range reads back as infinity, which must
    go to clients as JSON (json.dumps would write Infinity, which JSON parsers refuse) and back into the
    history as a literal the format reads."""
    fmt = get_format(fmt_name)
    (name, arguments), = split_calls(text, fmt)
    assert abs(_strict(arguments)["n"]) == float("inf")
    written = fmt.answer_turn(CallResult(calls=fmt.parse(text), text=text, finish_reason="stop"))
    rendered = fmt.template_messages([written])[0]
    if fmt_name == FUNCTIONGEMMA:
        assert fmt.parse(gemma_call(name, _strict(arguments))) == fmt.parse(text)
    else:
        assert fmt.parse(rendered["content"]) == fmt.parse(text)


@pytest.mark.nomodel
def test_the_stream_reader_sends_each_call_as_json_once_complete():
    fmt = get_format(FUNCTIONGEMMA)
    assert [(n, json.loads(a)) for n, a in split_calls(TEXT, fmt)] == [(c.name, c.arguments) for c in CALLS]
    reader, events = call_reader(fmt), []
    for ch in TEXT:
        events += reader.feed(ch)
    assert [e.name for e in events if isinstance(e, CallStart)] == ["set_alarm", "math.add"]
    assert [json.loads(e.text) for e in events if not isinstance(e, CallStart)] == [c.arguments for c in CALLS]


class _Bytes:
    """A tokenizer of single bytes, an end token, and (special) FunctionGemma's markers as control tokens."""

    MARKERS = ("<start_function_call>", "<end_function_call>", "<escape>")

    def __init__(self, special: bool) -> None:
        self.tokens = [bytes([i]) for i in range(256)] + [b"<eos>"]
        self.special_token_ids = [256]
        if special:
            self.tokens += [m.encode() for m in self.MARKERS]
            self.special_token_ids += [257, 258, 259]
        self.eos_token_id, self.bos_token_id = 256, None

    def __call__(self, data: bytes) -> list[int]:
        return list(data)

    def encode(self, text: str) -> list[int]:
        """`text` as tokens, the markers as their control tokens where the vocabulary has them."""
        out: list[int] = []
        while text:
            marker = next((m for m in self.MARKERS if text.startswith(m) and m.encode() in self.tokens), None)
            if marker:
                out.append(self.tokens.index(marker.encode()))
                text = text[len(marker):]
            else:
                out += list(text[0].encode())
                text = text[1:]
        return out


def accepts(lark: str, text: str, special: bool = False) -> bool:
    from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper

    tokenizer = _Bytes(special)
    matcher = LLMatcher(LLTokenizer(TokenizerWrapper(tokenizer)), LLMatcher.grammar_from_lark(lark), log_level=0)
    return matcher.consume_tokens(tokenizer.encode(text)) and matcher.is_accepting()


def _options(special: bool, **kw) -> CallOptions:
    tags = ("<start_function_call>", "<end_function_call>")
    markers = Markers(*tags, "<[257]>", "<[258]>", True, (257,), (258,)) if special else None
    return CallOptions(tool_format=FUNCTIONGEMMA, markers=markers, **kw)


@pytest.mark.nomodel
@pytest.mark.parametrize("special", [False, True], ids=["text-markers", "control-tokens"])
@pytest.mark.parametrize("kw", [{}, {"no_call": "text"}, {"min_calls": 2, "max_calls": 3}])
def test_the_grammar_admits_functiongemma_values_valid_for_the_schema(special, kw):
    from llguidance import LLMatcher

    options = _options(special, **kw)
    lark = tool_call_lark(normalize_tools(TOOLS), options)
    assert LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(lark)) == ""
    assert accepts(lark, TEXT, special)
    one = "<start_function_call>call:set_alarm{repeat:false,time:<escape>23:59<escape>}<end_function_call>"
    assert accepts(lark, one, special) == (options.min_calls <= 1)
    for bad in (TEXT.replace("repeat:true", "repeat:True"),  # Python's boolean is not the template's
                TEXT.replace("07:00", "7:00"),  # the pattern
                TEXT.replace("label:None,", "label:<escape>" + "x" * 21 + "<escape>,"),  # maxLength
                TEXT.replace("<escape>mon<escape>", "<escape>sun<escape>"),  # the enum
                TEXT.replace("label:None,repeat:true,", "repeat:true,label:None,"),  # dictsort order
                TEXT.replace("time:<escape>07:00<escape>", "").replace(",}", "}"),  # time is required
                one.replace("<escape>}", "<escape>,Volume:11}"),  # the maximum
                one.replace("repeat:false,", "Volume:10,repeat:false,")):  # dictsort ignores case: time < Volume
        assert not accepts(lark, bad, special), bad
    assert accepts(lark, one.replace("<escape>}", "<escape>,Volume:10}"), special) == (options.min_calls <= 1)


@pytest.mark.nomodel
def test_a_schema_the_format_cannot_write_is_refused_by_name():
    bad = [{"name": "odd", "parameters": {"type": "object", "properties": {"user:id": {"type": "string"}},
                                          "required": ["user:id"]}}]
    with pytest.raises(ToolSchemaError, match="tool 'odd'.*'user:id'.*not bare keys"):
        tool_call_lark(normalize_tools(bad), CallOptions(tool_format=FUNCTIONGEMMA))
    dated = [{"name": "dated", "parameters": {"type": "object", "properties": {"day": {"type": "string", "format": "date"}},
                                              "required": ["day"]}}]
    with pytest.raises(ToolSchemaError, match="tool 'dated'.*format 'date'"):
        tool_call_lark(normalize_tools(dated), CallOptions(tool_format=FUNCTIONGEMMA))
    # an optional argument the format cannot write is never written
    fine = [{"name": "fine", "parameters": {"type": "object", "properties": {
        "user:id": {"type": "string"}, "day": {"type": "string", "format": "date"}, "x": {}}}}]
    lark = tool_call_lark(normalize_tools(fine), CallOptions(tool_format=FUNCTIONGEMMA))
    assert accepts(lark, "<start_function_call>call:fine{x:<escape>any<escape>}<end_function_call>")
    assert not accepts(lark, "<start_function_call>call:fine{day:<escape>2026-01-01<escape>}<end_function_call>")


@pytest.mark.nomodel
def test_the_template_is_recognized_and_renders_calls_and_named_results():
    template = TEMPLATE.read_text()
    assert detect_format(template)[0] == FUNCTIONGEMMA
    fmt = get_format(FUNCTIONGEMMA)
    turn = fmt.answer_turn(CallResult(calls=CALLS, text=TEXT, finish_reason="stop"))
    messages = prepare_messages("Wake me at 7", TOOLS, None, FUNCTIONGEMMA) + [
        turn, {"role": "tool", "content": "ok"}, {"role": "tool", "content": "3.5"}]
    rendered = ChatTemplate(template).render(fmt.template_messages(messages), tools=template_tools(TOOLS, FUNCTIONGEMMA))
    assert ("<start_of_turn>model\n" + TEXT + "<start_function_response>response:set_alarm{value:<escape>ok<escape>}"
            "<end_function_response><start_function_response>response:math.add{value:<escape>3.5<escape>}") in rendered


@pytest.mark.nomodel
def test_every_jsonschemabench_schema_compiles_or_is_refused_by_name():
    """Real-world schemas: a grammar llguidance takes, or a ToolSchemaError naming the tool; never a crash."""
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
                lark = tool_call_lark(normalize_tools([tool]), CallOptions(min_calls=1, tool_format=FUNCTIONGEMMA))
            except ToolSchemaError as exc:
                assert "'record'" in str(exc), str(exc)
                refused += 1
                continue
            assert LLMatcher.validate_grammar(LLMatcher.grammar_from_lark(lark)) == "", (name, key)
            built += 1
    assert built > 3 * refused, (built, refused)  # measured: 960 built, 240 refused (63 of them by ondevice's schema checks)


# --- on Qwen2.5-Coder with FunctionGemma's template ----------------------------------------------------

REQUIRED = CallOptions(min_calls=1)


@pytest.fixture(scope="module")
def qwen_gemma(ondevice_home) -> ToolCaller:
    settings = Settings(date_string=PINNED_DATE, n_ctx=4096, max_tokens=160, tool_format=FUNCTIONGEMMA,
                        chat_template=TEMPLATE.read_text(), n_parallel=2)
    with ToolCaller.load(QWEN_ALIAS, settings) as caller:
        yield caller


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_every_example_gets_valid_functiongemma_calls(qwen_gemma, name):
    tools, case = load_example(name)
    required = bool(tools) and name != "wrong_tool"  # no tool fits: a call is not asked for
    for query in case["queries"]:
        result = qwen_gemma.call(query, tools, options=REQUIRED if required else CallOptions())
        assert bool(result.calls) == required or not required and result.calls is not None, result.text
        assert validate_calls(result.calls, normalize_tools(tools)) == [], result.text
        if result.calls:
            fmt = get_format(FUNCTIONGEMMA)
            assert fmt.parse(result.text) == result.calls
            assert fmt.parse("".join(gemma_call(c.name, c.arguments) for c in result.calls)) == result.calls


def test_a_functiongemma_conversation_carries_calls_and_results_back(qwen_gemma):
    tools, case = load_example("simple")
    conversation = qwen_gemma.conversation(tools)
    first = conversation.ask(case["queries"][0], qwen_gemma.settings.with_(no_call="list"))
    if not first.calls:
        pytest.skip("Qwen answered without a call")
    conversation.add_tool_result('{"temperature": 72}')
    fmt = get_format(FUNCTIONGEMMA)
    shown = ChatTemplate(TEMPLATE.read_text()).render(fmt.template_messages(conversation.messages),
                                                      tools=template_tools(tools, FUNCTIONGEMMA))
    assert first.text.strip() + "<start_function_response>response:" + first.calls[0].name in shown
    after = conversation.reply()
    assert after.calls is not None and validate_calls(after.calls, normalize_tools(tools)) == []


def test_a_functiongemma_batch_equals_the_same_requests_alone(qwen_gemma):
    batch = [(load_example(name)[0], load_example(name)[1]["queries"][0]) for name in ("simple", "parallel")]
    alone = [qwen_gemma.call(query, tools).text for tools, query in batch]
    s = qwen_gemma.settings
    assert batch_texts(qwen_gemma, batch, s) == alone


def test_jsonschemabench_tools_get_valid_functiongemma_calls(qwen_gemma):
    """Real-world schemas as tool parameters, a call required: each answer is one valid call, or the
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
                result = qwen_gemma.call("Record an example item.", [tool], options=REQUIRED)
            except ToolSchemaError as exc:
                assert "'record'" in str(exc), str(exc)
                continue
            except BudgetError as exc:
                assert "raise max_tokens" in str(exc), str(exc)
                continue
            assert result.calls and {c.name for c in result.calls} == {"record"}, result.text
            for call in result.calls:
                jsonschema.validate(call.arguments, schemas[key])
            answered += 1
    assert answered >= 6, answered


def test_the_server_streams_functiongemma_calls_as_openai_tool_calls(ondevice_home):
    from ..server.conftest import API_KEY, Server, openai_tools

    server = Server("--model", QWEN_ALIAS, "--tool-format", FUNCTIONGEMMA, "--chat-template", str(TEMPLATE),
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
