"""An assistant turn's tool-call arguments reach the chat template as an object, as transformers'
convention has it (templates write ``arguments | tojson``), whether the caller gave an object or
OpenAI's JSON text: otherwise the history shows the model a call whose arguments are a quoted string."""

from __future__ import annotations

import json

import pytest

from ondevice.template.chat_template import ChatTemplate

from ..common import SHARED

pytestmark = pytest.mark.nomodel

TEMPLATES = SHARED / "fixtures" / "chat-templates"
ARGUMENTS = {"city": "Oslo", "unit": "f"}


def history(arguments) -> list[dict]:
    return [
        {"role": "user", "content": "Weather in Oslo in fahrenheit?"},
        {"role": "assistant", "content": "", "tool_calls": [
            {"id": "t1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "t1", "content": "41F, light rain"},
    ]


@pytest.mark.parametrize("name", ["qwen2.5.jinja", "qwen3.jinja", "llama-3.2.jinja"])
def test_arguments_given_as_json_text_render_as_the_object(name):
    template = ChatTemplate((TEMPLATES / name).read_text(), bos_token="<s>", eos_token="</s>")
    as_object = template.render(history(ARGUMENTS))
    assert template.render(history(json.dumps(ARGUMENTS))) == as_object
    text, spans = template.render_with_spans(history(json.dumps(ARGUMENTS)))
    assert text == as_object and spans is not None
    assert '\\"city\\"' not in as_object  # no quoted JSON inside JSON


def test_arguments_that_are_not_a_json_object_stay_text():
    template = ChatTemplate((TEMPLATES / "qwen2.5.jinja").read_text())
    assert "not json" in template.render(history("not json"))
