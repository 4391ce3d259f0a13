"""Schemas as callers write them: what the grammar enforces, that the caller's own schema judges every
answer, content that looks like a closing tag, and the bound on repeated calls. Real decoding on the
stand-in; a scripted chooser (still restricted by the grammar's mask) writes a chosen answer."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import jsonschema
import numpy as np
import pytest

from ondevice.errors import ToolSchemaError
from ondevice.formats.grammar import compile_grammar
from ondevice.grammar.calls import DEFAULT_OPTIONS, CallOptions
from ondevice.formats.blocks import parse_response, parse_tool_calls
from ondevice.engine.sampling import Sampler
from ondevice.schema.tools import normalize_tools
from llguidance import LLMatcher

from ..common import PINNED_DATE, REPO


def tool(params, name="t", description="d"):
    return {"name": name, "description": description, "parameters": params}


class Scripted(Sampler):
    """Writes `target` as far as the grammar's mask allows, then falls back to greedy."""

    def __init__(self, model, target: str):
        super().__init__()
        self.model, self.target = model, target.encode()

    def pick(self, logits, allowed=None, generated=()):
        done = self.model.detokenize(list(generated))
        rest = self.target[len(done):] if self.target.startswith(done) else b""
        ids = np.flatnonzero(allowed) if allowed is not None else np.arange(len(logits))
        best, best_len = None, 0
        for i in ids:
            piece = self.model.detokenize([int(i)])
            if piece and rest.startswith(piece) and len(piece) > best_len:
                best, best_len = int(i), len(piece)
        return best if best is not None else super().pick(logits, allowed, generated)


def grammar_accepts(caller, tools, text, max_calls=0):
    matcher = LLMatcher(caller.lltokenizer(), compile_grammar(normalize_tools(tools), options=DEFAULT_OPTIONS.capped(max_calls)), log_level=0)
    tokens = caller.model.tokenize(text, special=False)
    return bool(matcher.consume_tokens(tokens)) and matcher.is_accepting()


# --- a closing tag inside an argument ----------------------------------------------------------------

CLOSING = "close </tool_call> now"


@pytest.mark.parametrize("params", [
    {"type": "object", "properties": {"text": {"const": CLOSING}}, "required": ["text"]},
    {"type": "object", "properties": {"text": {"enum": [CLOSING, "other"]}}, "required": ["text"]},
    {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"]},
])
def test_closing_tag_inside_an_argument_is_an_ordinary_string(caller, params):
    tools = [tool(params, "post")]
    answer = '<tool_call>[{"name": "post", "arguments": {"text": "close </tool_call> now"}}]</tool_call>'
    result = caller.call(f"Post the message: {CLOSING}", tools, sampler=Scripted(caller.model, answer))
    assert result.text == answer
    assert result.calls_as_dicts() == [{"name": "post", "arguments": {"text": CLOSING}}]


@pytest.mark.nomodel
def test_parse_reads_json_not_up_to_the_first_closing_tag():
    text = 'Sure. <tool_call>[{"name": "post", "arguments": {"text": "a </tool_call> b"}}]</tool_call> done'
    assert parse_response(text) == [{"name": "post", "arguments": {"text": "a </tool_call> b"}}]
    assert parse_response("<tool_call>[1] trailing</tool_call>") == "<tool_call>[1] trailing</tool_call>"
    assert parse_tool_calls('<tool_call>[{"name": "a", "arguments": {"x": "</tool_call>"}}') is None


def test_cli_exit_0_with_a_closing_tag_in_a_const(tmp_path, ondevice_home):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([tool({"type": "object", "properties": {"text": {"const": CLOSING}},
                                       "required": ["text"]}, "post")]))
    r = _cli("call", f"Post the message: {CLOSING}", "--tools", str(tools), "--date-string", PINNED_DATE, home=ondevice_home)
    assert r.returncode == 0, r.stderr
    assert all(c["arguments"] == {"text": CLOSING} for c in json.loads(r.stdout))


def _cli(*args, stdin=None, home=None, shell=None):
    env = dict(os.environ, HF_HUB_OFFLINE="1", ONDEVICE_HOME=str(home))
    command = shell if shell else [sys.executable, "-m", "ondevice", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, env=env, cwd=REPO,
                          timeout=600, shell=bool(shell), executable="/bin/bash" if shell else None)


def test_tools_from_a_pipe(ondevice_home):
    tools = json.dumps([tool({"type": "object", "properties": {"city": {"type": "string"}}}, "get_weather")])
    r = _cli(home=ondevice_home, shell=(f"{sys.executable} -m ondevice call 'Weather in Oslo?' --date-string "
                                        f"'{PINNED_DATE}' --tools <(echo '{tools}')"))
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)
    r = _cli("call", "Weather in Oslo?", "--tools", "/dev/stdin", stdin=tools, home=ondevice_home)
    assert r.returncode == 0, r.stderr


# --- the discriminated union, and oneOf made exclusive ---------------------------------------------

SHAPES = {
    "type": "object",
    "properties": {"shape": {"type": "string", "enum": ["circle", "square"]},
                   "radius": {"type": "number"}, "side_length": {"type": "number"}},
    "required": ["shape"],
    "oneOf": [
        {"properties": {"shape": {"const": "circle"}}, "required": ["radius"]},
        {"properties": {"shape": {"const": "square"}}, "required": ["side_length"]},
    ],
}
AREA = {  # Glaive's calculate_area style: branches told apart only by their required keys
    "type": "object",
    "properties": {k: {"type": "number"} for k in ("base", "height", "radius", "side")},
    "oneOf": [{"required": ["base", "height"]}, {"required": ["radius"]}, {"required": ["side"]}],
}


@pytest.mark.parametrize("params", [SHAPES, AREA])
@pytest.mark.parametrize("seed, temperature", [(0, 0.0), (1, 0.9), (2, 1.5), (3, 2.0)])
def test_every_output_satisfies_the_callers_one_of(caller, params, seed, temperature):
    tools = [tool(params, "area", "Compute the area of a shape")]
    s = caller.settings.with_(seed=seed, temperature=temperature, max_tokens=160)
    result = caller.call("Area of a circle of radius 2, and of a square of side 3?", tools, settings=s,
                         options=CallOptions(min_calls=1))  # a call is required: there is always one to check
    assert result.calls, result.text
    for call in result.calls:
        jsonschema.validate(call.arguments, params)  # the caller's schema, as written


def test_a_value_valid_under_two_branches_is_not_in_the_grammar(caller):
    tools = [tool(AREA, "area")]
    both = '<tool_call>[{"name": "area", "arguments": {"base": 10, "height": 10, "radius": 10, "side": 10}}]</tool_call>'
    assert not grammar_accepts(caller, tools, both)
    assert grammar_accepts(caller, tools, '<tool_call>[{"name": "area", "arguments": {"radius": 10}}]</tool_call>')
    assert grammar_accepts(caller, [tool(SHAPES, "area")],
                           '<tool_call>[{"name": "area", "arguments": {"shape": "square", "side_length": 2}}]</tool_call>')
    assert not grammar_accepts(caller, [tool(SHAPES, "area")],
                               '<tool_call>[{"name": "area", "arguments": {"shape": "square", "radius": 2}}]</tool_call>')


@pytest.mark.nomodel
def test_one_of_with_overlapping_branches_is_relaxed_or_in_a_strict_tool_refused_with_the_place():
    overlapping = {"type": "object", "properties": {"x": {"oneOf": [{"type": "number"}, {"type": "integer"}]}}}
    (t,) = normalize_tools([tool(overlapping)])
    assert [str(r) for r in t.relaxed] == ["t:parameters.properties.x:oneOf"]
    with pytest.raises(ToolSchemaError, match=r"tool 't', at parameters.properties.x: .*'oneOf': branches 0 and 1"):
        normalize_tools([{**tool(overlapping), "strict": True}])


# --- keywords ------------------------------------------------------------------------------------

@pytest.mark.parametrize("params, good, bad", [
    ({"type": "object", "patternProperties": {"^x_": {"type": "integer"}}},
     {"x_a": 1}, {"x_a": "s"}),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "dependencies": {"a": ["b"]}}, {"a": 1, "b": 2}, {"a": 1}),
    ({"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
      "dependentSchemas": {"a": {"required": ["b"]}}}, {"b": 2}, {"a": 1}),
    ({"type": "object", "properties": {"xs": {"type": "array", "items": [{"type": "integer"}],
                                              "additionalItems": False}}}, {"xs": [1]}, {"xs": [1, 2]}),
    ({"type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True,
                                              "items": {"enum": ["a", "b", "c"]}}}}, {"xs": ["a", "c"]}, {"xs": ["a", "a"]}),
    ({"type": "object", "properties": {"kind": {"enum": ["c", "s"]}, "r": {"type": "number"}},
      "required": ["kind"], "if": {"properties": {"kind": {"const": "c"}}}, "then": {"required": ["r"]}},
     {"kind": "c", "r": 1}, {"kind": "c"}),
    ({"type": "object", "properties": {"a": {"type": "string", "title": "A", "x-unknown": 1, "name": "n"}},
      "id": "x", "examples": [{}]}, {"a": "v"}, {"a": 1}),
])
def test_keywords_are_enforced_exactly_where_they_apply(caller, params, good, bad):
    (t,) = normalize_tools([tool(params)])
    jsonschema.validate(good, t.parameters)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, t.parameters)
    wrap = lambda args: '<tool_call>[{"name": "t", "arguments": ' + json.dumps(args) + '}]</tool_call>'
    assert grammar_accepts(caller, [tool(params)], wrap(good))
    assert not grammar_accepts(caller, [tool(params)], wrap(bad))


@pytest.mark.parametrize("params, keyword", [
    ({"type": "object", "properties": {"x": {"not": {"type": "string"}}}}, "not"),
    ({"type": "object", "propertyNames": {"pattern": "^a", "maxLength": 3}}, "propertyNames"),
    ({"type": "object", "properties": {"xs": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}, "uniqueItems"),
    ({"type": "object", "properties": {"a": {"type": "string"}}, "if": {"properties": {"a": {"const": "x"}}},
      "then": {"required": ["a"]}}, "if"),
])
@pytest.mark.nomodel
def test_unenforceable_keywords_are_relaxed_or_in_a_strict_tool_refused_with_tool_path_and_keyword(params, keyword):
    (t,) = normalize_tools([tool(params)])
    assert [r.keyword for r in t.relaxed] == [keyword]
    with pytest.raises(ToolSchemaError, match=rf"tool 't', at parameters.*unsupported JSON Schema keyword '{keyword}'"):
        normalize_tools([{**tool(params), "strict": True}])


# --- repetition ---------------------------------------------------------------------------------

def test_an_identical_call_repeated_ends_the_list(caller):
    tools = [tool({"type": "object", "properties": {"r": {"type": "integer"}}, "required": ["r"]}, "area")]
    one = '{"name": "area", "arguments": {"r": 2}}'
    script = "<tool_call>[" + ", ".join([one] * 6) + "]</tool_call>"
    streamed: list[str] = []
    result = caller.call("Area?", tools, sampler=Scripted(caller.model, script), on_text=streamed.append)
    assert result.finish_reason == "repeat" and not result.truncated
    assert result.text == "<tool_call>[" + one + "]</tool_call>"  # the default: never the same call twice in a row
    assert "".join(streamed) == result.text  # the refused call was never streamed
    twice = caller.call("Area?", tools, sampler=Scripted(caller.model, script),
                        settings=caller.settings.with_(max_identical_calls=2))
    assert twice.text == "<tool_call>[" + ", ".join([one] * 2) + "]</tool_call>"
    off = caller.call("Area?", tools, sampler=Scripted(caller.model, script),
                      settings=caller.settings.with_(max_identical_calls=0))
    assert len(off.calls) == 6


def test_max_calls_bounds_the_list(caller):
    tools = [tool({"type": "object", "properties": {"r": {"type": "integer"}}}, "area")]
    calls = ", ".join(f'{{"name": "area", "arguments": {{"r": {i}}}}}' for i in range(4))
    assert grammar_accepts(caller, tools, f"<tool_call>[{calls}]</tool_call>", max_calls=4)
    assert not grammar_accepts(caller, tools, f"<tool_call>[{calls}]</tool_call>", max_calls=3)
    result = caller.call("Areas of the circles of radius 0, 1, 2 and 3?", tools,
                         sampler=Scripted(caller.model, f"<tool_call>[{calls}]</tool_call>"),
                         settings=caller.settings.with_(max_calls=3))
    assert [c.arguments for c in result.calls] == [{"r": 0}, {"r": 1}, {"r": 2}]
