"""With --no-grammar, generation stops at the `</tool_call>` that closes a `<tool_call>` block, not at
one in prose before it (the real model runs; a scripted sampler spells the text)."""

from __future__ import annotations

import llama_cpp

from ..common import load_example


class Scripted:
    """Picks the tokens of a fixed text, then end of turn."""

    def __init__(self, tokens: list[int], eog: int):
        self.tokens, self.eog = tokens, eog

    def pick(self, logits, allowed=None, generated=()):
        return self.tokens[len(generated)] if len(generated) < len(self.tokens) else self.eog


def test_free_generation_stops_after_the_block_not_in_prose(caller):
    tools, _ = load_example("simple")
    block = '<tool_call>[{"name": "get_weather", "arguments": {"location": "Paris"}}]</tool_call>'
    text = "A closing tag </tool_call> in prose first. " + block + " and more text after"
    tokens = caller.model.tokenize(text, special=False)
    assert caller.model.detokenize(tokens).decode() == text
    free = caller.settings.with_(constrained=False, max_tokens=len(tokens) + 5)
    eog = llama_cpp.llama_vocab_eos(caller.model.vocab)
    result = caller.call("Weather in Paris?", tools, settings=free, sampler=Scripted(tokens, eog))
    assert result.finish_reason == "stop"
    assert result.text.startswith("A closing tag </tool_call> in prose first. <tool_call>")
    assert result.text.rstrip().endswith("</tool_call>") and "more text" not in result.text
    assert [c.to_dict() for c in result.calls] == [{"name": "get_weather", "arguments": {"location": "Paris"}}]


def test_free_generation_with_only_a_stray_close_runs_to_the_end(caller):
    text = "Just prose with </tool_call> and no block."
    tokens = caller.model.tokenize(text, special=False)
    free = caller.settings.with_(constrained=False, max_tokens=len(tokens) + 5)
    result = caller.call("Hello?", [], settings=free, sampler=Scripted(tokens, llama_cpp.llama_vocab_eos(caller.model.vocab)))
    assert result.finish_reason == "eog" and result.text == text and result.calls is None
