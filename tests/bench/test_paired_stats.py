"""The statistics of the BFCL comparison: Wilson intervals, exact McNemar, false refusals, and the
threshold policy simulated from a "list" run."""

from __future__ import annotations

import pytest

from ondevice_bench.bfcl import CaseResult, made_call, mcnemar, threshold_policy, wilson

pytestmark = pytest.mark.nomodel


def test_wilson_interval_matches_known_values():
    assert wilson(0, 10) == (0.0, 0.2775)
    assert wilson(5, 10) == (0.2366, 0.7634)
    assert wilson(10, 10) == (0.7225, 1.0)


def test_mcnemar_is_exact_and_two_sided():
    right = [True] * 6 + [False] * 4
    wrong = [False] * 6 + [False] * 4
    t = mcnemar(right, wrong)  # 6 discordant pairs, all one way: p = 2 / 2**6
    assert t == {"only_first": 6, "only_second": 0, "p_value": 0.0312}
    assert mcnemar([True, False], [True, False])["p_value"] == 1.0


def test_a_refusal_is_an_answer_without_a_call():
    def row(calls, text):
        return CaseResult("x", "simple_python", "free", False, False, calls=calls, text=text)

    assert not made_call(row([], "<tool_call>[]</tool_call>"))
    assert not made_call(row(None, "I cannot help with that."))
    assert made_call(row(None, "<tool_call>[{broken"))  # a failed call is not a refusal
    assert made_call(row([{"name": "f", "arguments": {}}], ""))


def test_threshold_policy_trades_refusals_for_irrelevance():
    def row(cat, correct, p):
        return CaseResult(f"{cat}{p}", cat, "grammar", correct, True, extra={"no_call_probability": p})

    rows = [row("simple_python", True, 0.2), row("simple_python", False, 0.9),
            row("irrelevance", False, 0.8), row("irrelevance", False, 0.95)]
    policy = threshold_policy(rows, ["simple_python", "irrelevance"])
    assert policy["best_threshold"] == 0.8  # refuses the last three: simple 1/2, irrelevance 2/2
    assert policy["accuracy"] == {"simple_python": 0.5, "irrelevance": 1.0}
    assert policy["list_overall"] == pytest.approx(0.25)
    assert threshold_policy([CaseResult("a", "irrelevance", "grammar", True, True)], ["irrelevance"]) is None
