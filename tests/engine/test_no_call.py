"""How an answer without a call is produced (Settings.no_call), on the real stand-in model."""

from __future__ import annotations

import pytest

from ondevice import Settings
from ondevice.formats.grammar import tool_call_lark
from ondevice.grammar.calls import CallOptions
from ondevice.formats.tags import OPEN
from ondevice.settings import SettingsError

from ..common import load_example
from ..engine.test_decode import assert_valid


def test_list_is_the_stand_ins_default_and_reports_the_no_call_probability(caller):
    tools, case = load_example("wrong_tool")
    result = caller.call(case["queries"][0], tools)
    assert caller.default_no_call == "list"
    assert_valid(result, tools)
    assert result.message is None and 0.0 < result.no_call_probability < 1.0


def test_text_lets_the_model_answer_with_a_sentence(caller):
    # The stand-in answers the card's wrong-tool example with a sentence when allowed to.
    tools, case = load_example("wrong_tool")
    result = caller.call(case["queries"][0], tools, settings=caller.settings.with_(no_call="text"))
    assert result.calls == [] and result.message and not result.text.startswith("<")
    assert result.message == result.text.strip() and result.finish_reason == "stop"
    assert result.to_dict()["message"] == result.message


def test_a_sentence_cut_by_the_budget_is_still_an_answer_without_calls(caller):
    tools, case = load_example("wrong_tool")
    result = caller.call(case["queries"][0], tools, settings=caller.settings.with_(no_call="text", max_tokens=3))
    assert result.calls == [] and result.message and result.truncated and result.finish_reason == "budget"


@pytest.mark.parametrize("threshold, expect_call", [(0.0, False), (1.0, True)])
def test_the_threshold_decides_the_first_branch(caller, threshold, expect_call):
    tools, case = load_example("simple")
    s = caller.settings.with_(no_call="threshold", no_call_threshold=threshold, max_tokens=60)
    result = caller.call(case["queries"][0], tools, settings=s)
    assert 0.0 < result.no_call_probability < 1.0
    if expect_call:  # P(no call) < 1: the call branch, whatever the sampler would prefer
        assert result.text.startswith(OPEN) and result.message is None
        assert_valid(result, tools)
    else:
        assert result.calls == [] and result.message


def test_a_sentence_goes_back_into_the_conversation_as_written(caller):
    tools, case = load_example("wrong_tool")
    conversation = caller.conversation(tools)
    result = conversation.ask(case["queries"][0], caller.settings.with_(no_call="text", max_tokens=40))
    assert conversation.messages[-1] == {"role": "assistant", "content": result.message}


@pytest.mark.nomodel
def test_the_sentence_can_neither_start_nor_hide_a_tag_nor_start_like_a_call():
    lark = tool_call_lark([], CallOptions(no_call="text", message_max_chars=50))
    assert "message: /[^<\\s{\\[`][^<]{0,49}/" in lark and "start: calls | message" in lark


@pytest.mark.parametrize("changes, expected", [
    ({"no_call": "maybe"}, "setting no_call: expected None, 'list', 'text' or 'threshold', got 'maybe'"),
    ({"no_call_threshold": 1.5}, "setting no_call_threshold: expected None or a probability in [0, 1], got 1.5"),
])
@pytest.mark.nomodel
def test_bad_no_call_settings_are_clear_errors(changes, expected):
    with pytest.raises(SettingsError) as info:
        Settings(**changes)
    assert str(info.value) == expected
