"""A conversation's later turns evaluate only what the turn added, and answer exactly as the same request
on a fresh cache does: the stand-in (the card's format, a follow-up query) and Qwen (the native format,
tool results), on one sequence and through the server's resent history alike."""

from __future__ import annotations

import pytest

from ondevice import Settings, ToolCaller
from ondevice.engine.engine import canonical_cuts, shared_cut

from ..common import PINNED_DATE, QWEN_ALIAS, load_example



def generation_prompt(caller: ToolCaller) -> int:
    """The tokens of the generation prompt, the one part of the previous prompt evaluated again."""
    return len(caller.model.tokenize("<|im_start|>assistant\n"))


@pytest.mark.nomodel
def test_cuts_are_a_function_of_the_prompt_and_reuse_stops_where_they_part():
    assert canonical_cuts(10, 4, (7,), 3) == [0, 3, 4, 7, 10]
    assert canonical_cuts(10, 9, (), 4) == [0, 4, 8, 9, 10]
    first = canonical_cuts(12, 4, (9,), 512)           # turn 1: ends with the generation prompt at 9
    second = canonical_cuts(30, 4, (9, 27), 512)       # turn 2: its answer starts at 9
    assert shared_cut(first, second, limit=12) == 9
    assert shared_cut(first, second, limit=8) == 4
    assert shared_cut([0, 2, 12], second, limit=12) == 0  # evaluated otherwise: nothing is reused


def fresh_answer(spec: str, messages: list, tools: list, settings: Settings):
    with ToolCaller.load(spec, settings.with_(prefix_cache_entries=0)) as fresh:
        return fresh.call_messages(messages, tools)


def test_a_follow_up_query_evaluates_only_its_turn_and_answers_as_a_fresh_cache(caller, standin_path):
    tools, case = load_example("multi_turn")
    conversation = caller.conversation(tools)
    first = conversation.ask(case["queries"][0])
    second = conversation.ask(case["queries"][1])
    third = conversation.ask("And the one after that?")
    for before, after in ((first, second), (second, third)):
        added = after.timings["prompt_tokens"] - before.timings["prompt_tokens"]
        evaluated = after.timings["prompt_tokens"] - after.timings["prompt_reused"]
        assert evaluated == added + generation_prompt(caller)
    again = fresh_answer(str(standin_path), conversation.messages[:-1], tools, caller.settings)
    assert again.timings["prompt_reused"] == 0
    assert (again.text, again.no_call_probability) == (third.text, third.no_call_probability)


def test_tool_results_turns_evaluate_only_what_they_added_and_answer_as_a_fresh_cache(qwen_caller):
    tools, case = load_example("multi_turn")
    conversation = qwen_caller.conversation(tools)
    answers = [conversation.ask(case["queries"][0])]
    for k in range(2):
        for call in answers[-1].calls or []:
            conversation.add_tool_result(f'{{"result": "{call.name} done", "turn": {k}}}')
        answers.append(conversation.reply() if answers[-1].calls else conversation.ask("Thanks. And tomorrow?"))
    for before, after in zip(answers, answers[1:]):
        added = after.timings["prompt_tokens"] - before.timings["prompt_tokens"]
        evaluated = after.timings["prompt_tokens"] - after.timings["prompt_reused"]
        assert evaluated == added + generation_prompt(qwen_caller)
    again = fresh_answer(QWEN_ALIAS, conversation.messages[:-1], tools, qwen_caller.settings)
    assert again.text == answers[-1].text


def test_the_server_history_resent_picks_up_where_the_last_answer_began(caller):
    """A server client resends the whole conversation each turn: the same messages, the same reuse."""
    tools, case = load_example("multi_turn")
    conversation = caller.conversation(tools)
    conversation.ask(case["queries"][0])
    previous = caller.call_messages(conversation.messages + [{"role": "user", "content": case["queries"][1]}],
                                    tools)
    resent = caller.call_messages(conversation.messages + [{"role": "user", "content": case["queries"][1]}],
                                  tools)
    assert resent.timings["prompt_tokens"] - resent.timings["prompt_reused"] == generation_prompt(caller)
    assert resent.text == previous.text
