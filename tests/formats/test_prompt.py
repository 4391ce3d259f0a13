"""The prompt layer reproduces the model card's strings and prepare_messages semantics."""

from __future__ import annotations

import json
import re

from jinja2 import Template

from ondevice.formats.card import SYSTEM_PROMPT, USER_TEMPLATE, render_user_prompt
from ondevice.formats.prompt import prepare_messages

from ..common import SHARED, load_example
import pytest

pytestmark = pytest.mark.nomodel

CARD = (SHARED / "model-card.txt").read_text()


def card_string(pattern: str) -> str:
    match = re.search(pattern, CARD, re.DOTALL)
    assert match, f"pattern not found in the model card: {pattern}"
    return match.group(1)


def test_system_prompt_is_the_cards_verbatim():
    expected = card_string(r'SYSTEM_PROMPT = """(.*?)""".strip\(\)').strip()
    assert SYSTEM_PROMPT == expected
    assert SYSTEM_PROMPT.count("functions. \n") == 1  # the card's trailing spaces survive


def test_user_prompt_matches_the_cards_jinja_rendering():
    template = Template(card_string(r'prompt = Template\("""(.*?)"""\.lstrip\(\)\)').lstrip())
    tools, case = load_example("simple")
    query = case["queries"][0]
    assert render_user_prompt(query, tools) == template.render(tools=json.dumps(tools), query=query)
    assert USER_TEMPLATE.startswith("You have access to the following tools:\n<tools>")


def test_tools_appear_exactly_as_passed_openai_style_included():
    tools, case = load_example("wrong_tool")
    assert tools[0]["type"] == "function"
    messages = prepare_messages(case["queries"][0], tools)
    assert f"<tools>{json.dumps(tools)}</tools>" in messages[1]["content"]


def test_prepare_messages_first_turn_and_follow_up():
    tools, _ = load_example("multi_turn")
    first = prepare_messages("Weather in Madrid?", tools)
    assert [m["role"] for m in first] == ["system", "user"]
    assert first[0]["content"] == SYSTEM_PROMPT
    history = first + [{"role": "assistant", "content": json.dumps([{"name": "get_weather", "arguments": {"location": "Madrid"}}])}]
    follow = prepare_messages("And in Edinburgh?", tools, history)
    assert follow[:3] == history and follow[3] == {"role": "user", "content": "And in Edinburgh?"}
    assert history[-1]["role"] == "assistant"  # the caller's list is not mutated
    assert len(history) == 3


def test_no_tools_renders_an_empty_list():
    assert "<tools>[]</tools>" in prepare_messages("hi")[1]["content"]
