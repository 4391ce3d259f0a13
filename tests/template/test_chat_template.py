"""Our renderer equals transformers' apply_chat_template on the exact Llama 3.2 template, token for token."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from ondevice.template.chat_template import ChatTemplate, ChatTemplateError
from ondevice.formats.prompt import prepare_messages

from ..common import EXAMPLE_NAMES, SHARED, load_example

pytestmark = pytest.mark.nomodel

FIXTURE = SHARED / "fixtures" / "llama-3.2-chat-template.jinja"
FIXTURE_SHA256 = "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4"


@pytest.fixture(scope="module")
def template_source() -> str:
    data = FIXTURE.read_bytes()
    assert hashlib.sha256(data).hexdigest() == FIXTURE_SHA256
    return data.decode()


@pytest.fixture(scope="module")
def hf_tokenizer(tmp_path_factory, template_source):
    transformers = pytest.importorskip("transformers")
    from ondevice_bench.fixtures.tokenizer_assets import CACHE_ENV, llama3_tokenizer_dir

    cache = os.environ.get(CACHE_ENV)
    folder = llama3_tokenizer_dir(Path(cache) if cache else tmp_path_factory.mktemp("tok"))
    tok = transformers.PreTrainedTokenizerFast(
        tokenizer_file=str(folder / "tokenizer.json"), bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")
    tok.chat_template = template_source
    return tok


def conversations():
    for name in EXAMPLE_NAMES:
        tools, case = load_example(name)
        messages = prepare_messages(case["queries"][0], tools)
        yield name, messages
        if len(case["queries"]) > 1:
            history = messages + [{"role": "assistant", "content": json.dumps([{"name": "get_weather", "arguments": {"location": "Madrid", "unit": "celsius"}}])}]
            yield name + "-turn2", prepare_messages(case["queries"][1], tools, history)
    yield "unicode", prepare_messages("¿Qué tiempo hace en 東京? 🌧️ \"quoted\" <b>tags</b>", [{"name": "t", "parameters": {"type": "object"}}])


@pytest.mark.parametrize("date_string", ["26 Jul 2024", "01 Jan 2026"])
@pytest.mark.parametrize("name, messages", list(conversations()), ids=[n for n, _ in conversations()])
def test_render_equals_transformers(hf_tokenizer, template_source, name, messages, date_string):
    ours = ChatTemplate(template_source, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>").render(
        messages, add_generation_prompt=True, date_string=date_string)
    theirs = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, date_string=date_string)
    assert ours == theirs
    assert f"Today Date: {date_string}\n" in ours
    ids = hf_tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=True, date_string=date_string)
    if isinstance(ids, dict) or hasattr(ids, "input_ids"):
        ids = ids["input_ids"]
    assert hf_tokenizer(ours, add_special_tokens=False)["input_ids"] == list(ids)


def test_unpinned_date_is_today_as_in_transformers(hf_tokenizer, template_source):
    messages = prepare_messages("hi", [])
    ours = ChatTemplate(template_source, bos_token="<|begin_of_text|>").render(messages)
    assert ours == hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def test_template_errors_are_clear(template_source):
    with pytest.raises(ChatTemplateError, match="does not compile"):
        ChatTemplate("{% for x in %}").render([])
    bad = [{"role": "user", "content": "x", "tool_calls": [1, 2]}]
    with pytest.raises(ChatTemplateError, match="only supports single tool-calls"):
        ChatTemplate(template_source).render(bad)


def test_llama3_control_tokens_in_content_stay_text(hf_tokenizer, template_source):
    """Every Llama 3 special token through the query, tools, history, a tool call and a tool result: the
    prompt holds exactly the template's own special tokens (with the real Llama 3 tokenizer)."""
    from ondevice.template.control_tokens import ControlTokens, tokenize_prompt

    from ..template.test_untrusted_content import control_ids, conversation, payload

    specials = {text: hf_tokenizer.convert_tokens_to_ids(text) for text in hf_tokenizer.all_special_tokens}
    specials.update({text: token for text, token in hf_tokenizer.get_added_vocab().items()})
    assert len(specials) == 256 and "<|eot_id|>" in specials and "<|start_header_id|>" in specials
    control = ControlTokens(specials)
    template = ChatTemplate(template_source, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>")

    def tokenize(text: str, special: bool) -> list[int]:
        return hf_tokenizer(text, add_special_tokens=False, split_special_tokens=not special)["input_ids"]

    def prompt_tokens(evil: str) -> tuple[str, list[int]]:
        _, messages = conversation(evil)
        messages.insert(-1, {"role": "assistant", "tool_calls": [{"function": {"name": evil, "arguments": {"x": evil}}}]})
        messages.insert(-1, {"role": "ipython", "content": {"result": evil}})
        text, spans = template.render_with_spans(messages, date_string="26 Jul 2024")
        assert spans is not None
        return text, tokenize_prompt(text, spans, control, tokenize)

    text, tokens = prompt_tokens(payload(specials))
    clean_text, clean = prompt_tokens("hello")
    assert clean == tokenize(clean_text, True)  # no special text in content: tokenized as before
    assert control_ids(tokens, specials) == control_ids(clean, specials)
    assert hf_tokenizer.decode(tokens) == text
    assert len(control_ids(tokenize(text, True), specials)) > 10 * len(specials)  # what the old path made


@pytest.mark.parametrize("source", [
    "{{ messages.__class__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ raise_exception.__globals__ }}",
    "{{ self.__init__.__globals__['os'] }}",
    "{{ os.system('touch /tmp/ondevice-pwned') }}",
    "{% set x = messages.append({'role': 'system'}) %}",
    "{{ lipsum.__globals__['os'].popen('id').read() }}",
])
def test_template_cannot_reach_python(source):
    """GGUF chat templates run in Jinja's immutable sandbox: reaching for internals fails cleanly."""
    with pytest.raises(ChatTemplateError, match="refused the messages"):
        ChatTemplate(source).render([{"role": "user", "content": "hi"}])
