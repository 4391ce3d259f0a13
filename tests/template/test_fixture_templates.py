"""Every real chat template in the fixtures renders a conversation with tools, a call and its result,
or refuses it in one line that says why (the template's own requirement: Functionary wants the
arguments as a string, Gemma 3 has no tool turn, gpt-oss-20b reads another tool layout)."""

from __future__ import annotations

import pytest

from ondevice.errors import ChatTemplateError
from ondevice.template.chat_template import ChatTemplate

from ..common import SHARED

pytestmark = pytest.mark.nomodel

TEMPLATES = SHARED / "fixtures" / "chat-templates"
TOOLS = [{"type": "function", "function": {
    "name": "get_weather", "description": "Get the weather",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
CONVERSATION = [
    {"role": "system", "content": "You are helpful."},
    {"role": "user", "content": "Weather in Oslo?"},
    {"role": "assistant", "content": "", "tool_calls": [  # a 9-character id: Mistral's templates demand one
        {"id": "abcdefghi", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Oslo"}}}]},
    {"role": "tool", "tool_call_id": "abcdefghi", "name": "get_weather", "content": "41F"},
]
REFUSED = {  # measured 2026-12-07: what each of these templates requires, in its own words
    "functionary-v3.1.jinja": "can only concatenate str",
    "functionary-v3.2.jinja": "can only concatenate str",
    "gemma-3.jinja": "roles must alternate",
    "gpt-oss-20b.jinja": "has no attribute 'description'",
}


@pytest.mark.parametrize("name", sorted(p.name for p in TEMPLATES.glob("*.jinja")))
def test_a_fixture_template_renders_or_says_why_in_one_line(name):
    template = ChatTemplate((TEMPLATES / name).read_text(), bos_token="<s>", eos_token="</s>")
    if name in REFUSED:
        with pytest.raises(ChatTemplateError, match=REFUSED[name]) as error:
            template.render(CONVERSATION, tools=TOOLS, date_string="26 Jul 2024")
        assert "\n" not in str(error.value)
        return
    text = template.render(CONVERSATION, tools=TOOLS, date_string="26 Jul 2024")
    assert "Weather in Oslo?" in text and "41F" in text
