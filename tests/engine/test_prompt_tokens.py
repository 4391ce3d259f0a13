"""A request's prompt: the chat template rendered once and the prompt tokenized once per call, giving
the tokens and the tools prefix the former way gave (the prompt rendered three times: plain, with the
query marked, and for the tokens; and tokenized twice: the prompt, then the prefix text alone). And the
engine's model defaults: never shared between engines."""

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


def former_prepare(caller, messages: list, tools_variable, query) -> tuple[list[int], int]:
    """What PromptBuilder.prepare returned before: the query marked in a second rendering, the prefix
    text tokenized again and compared with the prompt."""
    prompts = caller.engine.prompts
    prefix_text = prompts.render(messages, None, tools_variable)
    last = messages[-1].get("content")
    if isinstance(last, str) and last:
        query = last if query is None else query
        at = last.rfind(query) if query else -1
        if at >= 0:
            marked = list(messages)
            marked[-1] = dict(marked[-1], content=last[:at] + MARK + last[at + len(query):])
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
def test_prompt_tokens_and_prefix_are_unchanged_and_made_once(caller, monkeypatch, name, messages, tools, query):
    fmt = NATIVE if name.endswith("native") else CARD
    variable = get_format(fmt).template_tools(tools)
    expected = former_prepare(caller, messages, variable, query)
    renders, tokenizations = [], []
    original_render, original_tokenize = ChatTemplate.render_with_spans, caller.model.tokenize
    monkeypatch.setattr(ChatTemplate, "render_with_spans",
                        lambda self, *a, **k: renders.append(1) or original_render(self, *a, **k))
    monkeypatch.setattr(caller.model, "tokenize", lambda *a, **k: tokenizations.append(1) or original_tokenize(*a, **k))
    got = caller.engine.prompts.prepare(messages, variable, None, query, caller.max_token_bytes)
    assert got == expected
    assert 0 < got[1] <= len(got[0])
    assert (len(renders), len(tokenizations)) == (1, 1)


def test_engines_do_not_share_their_model_defaults(caller):
    first, second = Engine(caller.model, caller.settings), Engine(caller.model, caller.settings)
    first.defaults.tool_format = NATIVE
    assert first.defaults is not second.defaults and second.defaults.tool_format == CARD
