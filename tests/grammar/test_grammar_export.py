"""`ondevice grammar`: the exported GBNF runs in llama.cpp's own grammar sampler (llama-cpp-python's
LlamaGrammar) on the stand-in, and every output is a valid answer, also accepted by the Lark grammar."""

from __future__ import annotations

import json

import pytest
from llguidance import LLMatcher

from ondevice.errors import ToolSchemaError
from ondevice.formats.grammar import compile_grammar
from ondevice.grammar.calls import CallOptions
from ondevice.formats.card import CardFormat
from ondevice.grammar.export import tool_call_gbnf

CARD_FRAME = CardFormat.list_frame
from ondevice.formats.blocks import parse_tool_calls
from ondevice.schema.tools import normalize_tools
from ondevice.api import validate_calls

from ..common import EXAMPLES, PINNED_DATE, load_example
from ..cli.test_cli import ondevice

CASES = [  # (example, --tool-choice, parallel)
    ("simple", "required", True),
    ("multiple", "country_info.population", False),
    ("parallel", "auto", False),
    ("parallel_multiple", "math_toolkit.product_of_primes", True),
    ("wrong_tool", "none", True),
]


@pytest.fixture(scope="module")
def llama(standin_path):
    llama_cpp = pytest.importorskip("llama_cpp")
    llm = llama_cpp.Llama(model_path=str(standin_path), n_ctx=2048, n_threads=1, verbose=False, seed=0)
    yield llm
    llm.close()


@pytest.mark.parametrize("example,choice,parallel", CASES)
def test_exported_gbnf_runs_in_llama_cpp(tmp_path, ondevice_home, caller, llama, example, choice, parallel):
    from llama_cpp import LlamaGrammar

    tools, case = load_example(example)
    args = ["grammar", "--tools", str(EXAMPLES / example / "tools.json"), "--tool-choice", choice,
            "--query", case["queries"][0], "--out", str(tmp_path), "--date-string", PINNED_DATE,
            "--model", str(caller.model.path)]
    r = ondevice(*args, *([] if parallel else ["--no-parallel-tool-calls"]), home=ondevice_home)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["messages.json", "prompt.txt", "tool_call.gbnf",
                                                          "tool_call.lark"]
    prompt = (tmp_path / "prompt.txt").read_text()
    assert prompt == caller.render(json.loads((tmp_path / "messages.json").read_text()))

    grammar = LlamaGrammar.from_string((tmp_path / "tool_call.gbnf").read_text(), verbose=False)
    out = llama(prompt, grammar=grammar, max_tokens=128, temperature=0.0)["choices"][0]
    assert out["finish_reason"] == "stop", out  # the grammar completed: the answer is whole
    text = out["text"]

    normalized = normalize_tools(tools)
    calls = parse_tool_calls(text)
    assert calls is not None, text
    assert validate_calls(calls, normalized) == []
    if choice == "none":
        assert calls == []
    elif choice != "auto":
        assert calls and (choice == "required" or {c.name for c in calls} == {choice})
    if not parallel:
        assert len(calls) <= 1

    # The llguidance grammar (what tool_call.lark holds) accepts the same text.
    options = CallOptions(min_calls=0 if choice in ("auto", "none") else 1,
                          max_calls=0 if choice == "none" else (None if parallel else 1),
                          allowed=None if choice in ("auto", "none", "required") else (choice,))
    matcher = LLMatcher(caller.lltokenizer(), compile_grammar(normalized, options=options), log_level=0)
    assert matcher.consume_tokens(caller.model.tokenize(text, special=False)) and matcher.is_accepting(), text


@pytest.mark.nomodel
def test_gbnf_refuses_what_it_cannot_enforce():
    tools = normalize_tools([{"name": "set_volume", "parameters": {"type": "object", "properties": {
        "level": {"type": "integer", "minimum": 0, "maximum": 10}}}}])
    with pytest.raises(ToolSchemaError, match=r"'set_volume'.*'minimum'"):
        tool_call_gbnf(tools, CARD_FRAME)


def test_gbnf_covers_nested_schemas(llama):
    """Nested objects, optional properties, arrays with bounds, anyOf, $ref and free objects all parse."""
    from llama_cpp import LlamaGrammar

    tools = normalize_tools([{"name": "plan", "parameters": {
        "type": "object",
        "$defs": {"step": {"type": "object", "properties": {"what": {"type": "string", "maxLength": 20},
                                                             "after": {"$ref": "#/$defs/step"}}}},
        "properties": {
            "title": {"type": "string", "minLength": 1},
            "steps": {"type": "array", "items": {"$ref": "#/$defs/step"}, "minItems": 1, "maxItems": 3},
            "pair": {"type": "array", "prefixItems": [{"type": "integer"}, {"type": "boolean"}], "items": False},
            "either": {"anyOf": [{"type": "null"}, {"type": "number"}]},
            "meta": {"type": "object"},
            "kind": {"type": ["string", "integer"]},
        },
        "required": ["steps"],
    }}])
    # LlamaGrammar.from_string keeps the text unparsed (0.3.x): sample with it, so llama.cpp parses it and
    # every answer it completes must be valid for the schema.
    prompt = "Plan a trip in two steps, as a tool call.\n"
    for seed, options in ((0, CallOptions()), (1, CallOptions(min_calls=1, max_calls=2)), (2, CallOptions(min_calls=1))):
        grammar = LlamaGrammar.from_string(tool_call_gbnf(tools, CARD_FRAME, options), verbose=False)
        llama.set_seed(seed)
        out = llama(prompt, grammar=grammar, max_tokens=256, temperature=1.0, seed=seed)["choices"][0]
        if out["finish_reason"] != "stop":
            continue  # cut by the budget: nothing to check but that llama.cpp took the grammar
        calls = parse_tool_calls(out["text"])
        assert calls is not None, out["text"]
        assert validate_calls(calls, tools) == [], out["text"]
        if options.min_calls:
            assert 1 <= len(calls) <= (options.max_calls or 99), out["text"]
