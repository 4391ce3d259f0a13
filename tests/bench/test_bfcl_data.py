"""The BFCL loader and the stratified --limit sampler."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.nomodel


def test_loader_returns_the_ten_categories_with_their_counts(bfcl):
    assert len(bfcl.CATEGORIES) == 10
    for category in bfcl.CATEGORIES:
        cases = bfcl.load_category(category)
        assert len(cases) == bfcl.EXPECTED_COUNTS[category], category
        assert len({c.id for c in cases}) == len(cases)
        assert all(c.category == category and c.messages for c in cases)
        # every case offers tools, except four live_irrelevance cases that offer none
        assert sum(not c.functions for c in cases) == (4 if category == "live_irrelevance" else 0)
        if bfcl.is_irrelevance(category):
            assert all(c.ground_truth is None for c in cases)
        else:
            assert all(c.ground_truth for c in cases)
    assert sum(bfcl.EXPECTED_COUNTS.values()) == 3475


def test_loader_keeps_bfcl_dialect_schemas_as_they_are(bfcl):
    case = bfcl.load_category("simple_python")[0]
    assert case.id == "simple_python_0"
    assert case.functions[0]["parameters"]["type"] == "dict"  # not rewritten to "object"


def test_limit_is_stratified_per_category_and_deterministic_per_seed(bfcl):
    first = bfcl.sample_cases(bfcl.CATEGORIES, 5, seed=0)
    again = bfcl.sample_cases(bfcl.CATEGORIES, 5, seed=0)
    other = bfcl.sample_cases(bfcl.CATEGORIES, 5, seed=1)
    assert [c.id for c in first] == [c.id for c in again]
    assert [c.id for c in first] != [c.id for c in other]
    per_cat = {}
    for c in first:
        per_cat[c.category] = per_cat.get(c.category, 0) + 1
    assert per_cat == {c: 5 for c in bfcl.CATEGORIES}
    # a category's draw does not depend on which other categories run
    alone = bfcl.sample_cases(["live_multiple"], 5, seed=0)
    assert [c.id for c in alone] == [c.id for c in first if c.category == "live_multiple"]
    # drawn cases keep BFCL's order within a category
    order = {c.id: i for i, c in enumerate(bfcl.load_category("live_multiple"))}
    assert [order[c.id] for c in alone] == sorted(order[c.id] for c in alone)


def test_limit_larger_than_a_category_takes_all_of_it(bfcl):
    cases = bfcl.sample_cases(["live_parallel", "simple_python"], 20, seed=3)
    assert sum(c.category == "live_parallel" for c in cases) == 16
    assert sum(c.category == "simple_python" for c in cases) == 20
    assert len(bfcl.sample_cases(["live_parallel"], None)) == 16


def test_interleaving_covers_every_category_early(bfcl):
    cases = bfcl.sample_cases(bfcl.CATEGORIES, 3, seed=0)
    order = bfcl.interleave_categories(cases)
    assert sorted(c.id for c in order) == sorted(c.id for c in cases)
    assert {c.category for c in order[:10]} == set(bfcl.CATEGORIES)


def test_unknown_category_is_refused_with_the_known_ones(bfcl):
    with pytest.raises(ValueError, match="simple_python"):
        bfcl.parse_categories("simple_python,nonsense")
    assert bfcl.parse_categories("all") == list(bfcl.CATEGORIES)


def test_system_and_multi_message_turns_map_to_the_card_interface(bfcl):
    with_system = next(c for c in bfcl.load_category("live_simple") if c.messages[0]["role"] == "system")
    query, history = bfcl.to_query_and_history(with_system)
    assert history is None
    assert query.startswith(with_system.messages[0]["content"].strip()[:40])
    assert query.endswith(with_system.messages[-1]["content"])

    multi = next(c for c in bfcl.load_category("live_irrelevance")
                 if [m["role"] for m in c.messages] == ["user", "assistant", "user"])
    query, history = bfcl.to_query_and_history(multi)
    assert query == multi.messages[-1]["content"]
    assert [m["role"] for m in history] == ["system", "user", "assistant"]
    assert "<tools>" in history[1]["content"] and multi.messages[0]["content"] in history[1]["content"]
