"""A model trained for tool calls, whose tokenizer has <tool_call> and </tool_call> as special tokens
(Qwen2.5-Coder-0.5B-Instruct: 151657 and 151658). Before the tags were written as the model emits
them, every constrained call failed: llguidance forced the special token, then refused it as not
matching the literal text "<tool_call>" of the grammar."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ondevice import Settings, ToolCaller
from ondevice.template.chat_template import ChatTemplateError
from ondevice.formats.tags import OPEN
from ondevice.models.catalog import manifests

from ..common import EXAMPLE_NAMES, PINNED_DATE, QWEN_ALIAS, load_example
from ..engine.test_decode import assert_valid


def test_the_tags_are_the_models_own_special_tokens(qwen_caller):
    markers = qwen_caller.markers()
    assert markers.special and markers.open_ids == (151657,) and markers.close_ids == (151658,)
    assert markers.open_lark == "<[151657]>"


@pytest.mark.parametrize("name", EXAMPLE_NAMES)
def test_card_examples_give_valid_calls(qwen_caller, name):
    # The regression test of the crash ("forced tokens refused: ... [151657]"), on every card example,
    # in the card's format (the native format: test_native_format.py).
    tools, case = load_example(name)
    conversation = qwen_caller.conversation(tools)
    for query in case["queries"]:
        result = conversation.ask(query, qwen_caller.settings.with_(max_tokens=160, no_call="list", tool_format="card"))
        assert_valid(result, tools)
        assert qwen_caller.model.tokenize(result.text)[0] == 151657  # the text reads as the model's token


@pytest.mark.parametrize("budget", [1, 4, 30])
def test_budget_running_out_still_closes_validly(qwen_caller, budget):
    tools, case = load_example("parallel")
    result = qwen_caller.call(case["queries"][0], tools, settings=qwen_caller.settings.with_(
        max_tokens=budget, no_call="list", tool_format="card"))
    assert_valid(result, tools)
    assert result.truncated and result.finish_reason == "budget"


def test_the_manifest_sets_the_models_no_call_default(qwen_caller):
    assert qwen_caller.default_no_call == manifests()[QWEN_ALIAS]["no_call"]
    tools, case = load_example("simple")
    result = qwen_caller.call(case["queries"][0], tools, settings=qwen_caller.settings.with_(max_tokens=60))
    assert result.calls is not None and 0.0 <= result.no_call_probability <= 1.0


def test_a_template_that_refuses_our_messages_is_a_clear_error(qwen_caller):
    source = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    caller = ToolCaller(qwen_caller.model, Settings(date_string=PINNED_DATE, chat_template=source))  # shares the model
    with pytest.raises(ChatTemplateError, match="refused the messages: System role not supported"):
        caller.call("What's the weather in Paris?", [])


def test_a_model_without_a_chat_template_is_a_clear_error(standin_path, tmp_path):
    bare = tmp_path / "no-template.gguf"
    subprocess.run([sys.executable, "-m", "gguf.scripts.gguf_new_metadata", "--remove-metadata",
                    "tokenizer.chat_template", "--force", str(standin_path), str(bare)], check=True, capture_output=True)
    with pytest.raises(ChatTemplateError, match="carries no chat template: pass one with Settings"):
        ToolCaller.load(str(bare), Settings(date_string=PINNED_DATE))
