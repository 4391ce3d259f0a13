"""A request's prompt: the prompt tokenized once per call, giving the tokens and the tools prefix the slow
way gives (the first user turn's query marked in another rendering, the prefix text tokenized again),
and where each assistant turn starts. And the engine's model defaults: never shared between engines."""

from __future__ import annotations

import pytest

from ondevice.engine import Engine
from ondevice.engine.session import lcp
from ondevice.formats import get_format
from ondevice.formats.prompt import prepare_messages
from ondevice.settings import CARD, NATIVE
from ondevice.template.chat_template import ChatTemplate

from ..common import EXAMPLE_NAMES, load_example

MARK = "\x00ondevice-query\x00"


def expected_prepare(caller, messages: list, tools_variable, fmt) -> tuple[list[int], int]:
    """The prompt and its tools prefix the slow way: the first user turn's query marked in a second
    rendering, the text before the mark tokenized again and compared with the prompt."""
    prompts = caller.engine.prompts
    first = next(i for i, m in enumerate(messages) if m["role"] == "user")
    content = messages[first]["content"]
    at = get_format(fmt).query_offset(content)
    marked = list(messages)
    marked[first] = dict(marked[first], content=content[:at] + MARK + content[at:])
    prefix_text = prompts.render(marked, None, tools_variable).split(MARK, 1)[0]
    _, prompt = prompts.tokenize(messages, None, tools_variable)
    return prompt, lcp(caller.model.tokenize(prefix_text), prompt)


def requests() -> list[tuple[str, list, list, object]]:
    """(id, messages, tools, query) for a few first queries, a follow-up, a query inside a longer turn."""
    out = []
    for name in EXAMPLE_NAMES[:3]:
        tools, case = load_example(name)
        query = case["queries"][0]
        out.append((f"{name}-card", prepare_messages(query, tools, None, CARD), tools, query))
        out.append((f"{name}-native", prepare_messages(query, tools, None, NATIVE), tools, query))
    tools, case = load_example(EXAMPLE_NAMES[0])
    first = prepare_messages(case["queries"][0], tools, None, CARD)
    follow_up = first + [{"role": "assistant", "content": "[]"}, {"role": "user", "content": "And tomorrow?"}]
    out.append(("follow-up", follow_up, tools, None))
    out.append(("inside-a-turn", [{"role": "user", "content": "Context first. Then: what time is it?"}], [],
                "what time is it?"))
    return out


@pytest.mark.parametrize("name, messages, tools, query", requests(), ids=[r[0] for r in requests()])
def test_prompt_tokens_prefix_and_turns_made_with_one_tokenization(caller, monkeypatch, name, messages, tools, query):
    fmt = NATIVE if name.endswith("native") else CARD
    variable = get_format(fmt).template_tools(tools)
    expected = expected_prepare(caller, messages, variable, fmt)
    renders, tokenizations = [], []
    original_render, original_tokenize = ChatTemplate.render_with_spans, caller.model.tokenize
    monkeypatch.setattr(ChatTemplate, "render_with_spans",
                        lambda self, *a, **k: renders.append(1) or original_render(self, *a, **k))
    monkeypatch.setattr(caller.model, "tokenize", lambda *a, **k: tokenizations.append(1) or original_tokenize(*a, **k))
    got = caller.engine.prompts.prepare(messages, variable, None, get_format(fmt).query_offset,
                                        caller.max_token_bytes)
    assert (got.tokens, got.prefix) == expected
    assert 0 < got.prefix <= len(got.tokens)
    assert (len(renders), len(tokenizations)) == (1, 1)
    # A turn starts at the generation prompt (the last one) and at each answer in the history.
    answers = sum(m["role"] == "assistant" for m in messages)
    assert len(got.turns) == answers + 1
    generation = got.tokens[got.turns[-1]:]
    assert caller.model.detokenize(generation).decode() == "<|im_start|>assistant\n"
    assert all(got.tokens[t:t + len(generation)] == generation for t in got.turns)


def test_the_card_query_offset_is_after_the_tools():
    card = get_format(CARD)
    content = prepare_messages("What is 2+2?", [{"name": "add", "description": "</tools>", "parameters": {}}],
                               None, CARD)[1]["content"]
    assert content[card.query_offset(content):] == "What is 2+2?"
    assert card.query_offset("What is 2+2?") == 0


def test_engines_do_not_share_their_model_defaults(caller):
    first, second = Engine(caller.model, caller.settings), Engine(caller.model, caller.settings)
    first.defaults.tool_format = NATIVE
    assert first.defaults is not second.defaults and second.defaults.tool_format == CARD
