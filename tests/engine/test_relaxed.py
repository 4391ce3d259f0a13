"""Relaxed keywords on a real model (the stand-in): the toolset is not refused, each call is checked
against the caller's full schema after decoding, a failing call is drawn again, and after its tries the
error names the tool, the place and the keyword. A call returned always passes the caller's schema."""

from __future__ import annotations

import jsonschema
import pytest

from ondevice.errors import RelaxedCallError
from ondevice.formats.blocks import validate_calls
from ondevice.schema.tools import normalize_tools

from ..schema.test_relax import TOOLSET
from ..schema.test_schema_coverage import Scripted


def tool(params, name):
    return {"name": name, "description": "d", "parameters": params}


def test_a_toolset_with_one_relaxed_keyword_answers_and_says_what_was_relaxed(caller):
    result = caller.call("Fetch https://example.com with the header x_token set to abc", TOOLSET,
                         settings=caller.settings.with_(max_tokens=64))
    assert [str(r) for r in result.relaxed] == ["fetch:parameters.properties.headers:propertyNames"]
    assert result.to_dict()["relaxed"] == [{"tool": "fetch", "path": "parameters.properties.headers",
                                            "keyword": "propertyNames"}]
    assert validate_calls(result.calls, normalize_tools(TOOLSET)) == []


def test_a_call_that_breaks_a_relaxed_keyword_is_drawn_again(caller):
    word = tool({"type": "object", "properties": {"word": {"type": "string", "maxLength": 8, "not": {"const": "bad"}}},
                 "required": ["word"]}, "say")
    script = '<tool_call>[{"name": "say", "arguments": {"word": "bad"}}]</tool_call>'  # the first draw breaks `not`
    # The redrawn word is the model's own, not in the query: the grounding check is not what this tests.
    settings = caller.settings.with_(refuse_ungrounded_calls=False)
    result = caller.call("Say a word", [word], sampler=Scripted(caller.model, script),
                         settings=settings.with_(max_tokens=48))
    assert result.timings["resampled_calls"] >= 1
    assert result.calls and result.calls[0].arguments["word"] != "bad"
    jsonschema.validate(result.calls[0].arguments, normalize_tools([word])[0].parameters)
    # A later call rolls back to the end of the call before it: that one is kept as it was.
    two = '<tool_call>[{"name": "say", "arguments": {"word": "ok"}}, {"name": "say", "arguments": {"word": "bad"}}]</tool_call>'
    second = caller.call("Say two words", [word], sampler=Scripted(caller.model, two),
                         settings=settings.with_(max_tokens=64))
    assert second.timings["resampled_calls"] >= 1 and second.calls[0].arguments == {"word": "ok"}
    assert all(c.arguments["word"] != "bad" for c in second.calls)
    plain = caller.call("Say a word", [tool({"type": "object", "properties": {"word": {"type": "string"}}}, "say")],
                        settings=caller.settings.with_(max_tokens=48))
    assert plain.timings["resampled_calls"] == 0 and plain.relaxed == []


def test_a_relaxed_keyword_the_model_keeps_breaking_is_a_clear_error(caller):
    # The grammar allows the digits 0-9; `not: {minimum: 0}` refuses every one of them.
    digit = tool({"type": "object", "properties": {"d": {"type": "integer", "minimum": 0, "maximum": 9,
                                                         "not": {"minimum": 0}}}, "required": ["d"]}, "digit")
    with pytest.raises(RelaxedCallError) as info:
        caller.call("Pick a digit", [digit], settings=caller.settings.with_(max_tokens=48))
    message = str(info.value)
    assert "tool 'digit'" in message and "'not' at parameters.properties.d" in message and "3 draws" in message
    assert "Remove or loosen that keyword" in message and "(arguments.d)" in message


def test_property_names_on_an_object_the_model_fills(caller):
    # The grammar allows any key here; every call returned has keys that match the pattern, or none is.
    fields = tool({"type": "object", "properties": {"fields": {
        "type": "object", "propertyNames": {"pattern": "^x_", "maxLength": 5},
        "additionalProperties": {"type": "integer", "minimum": 0, "maximum": 9}}}, "required": ["fields"]}, "fill")
    (normalized,) = normalize_tools([fields])
    assert [r.keyword for r in normalized.relaxed] == ["propertyNames"]
    try:
        result = caller.call("Fill the form: x_a is 1", [fields], settings=caller.settings.with_(max_tokens=48))
    except RelaxedCallError as exc:
        assert "'propertyNames' at parameters.properties.fields" in str(exc)
    else:
        for call in result.calls:
            jsonschema.validate(call.arguments, normalized.parameters)
