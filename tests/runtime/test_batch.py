"""Batched decoding (batch.py) on the real stand-in: several requests in one llama_decode, each in its
own sequence. Every answer is valid, and (greedy) equal to the same request run through the engine
alone, whatever runs beside it."""

from __future__ import annotations

import pytest

from ondevice import Settings, ToolCaller
from ondevice.batch import BatchEngine
from ondevice.errors import OndeviceError, SettingsError
from ondevice.parse import validate_calls
from ondevice.prompt import prepare_messages
from ondevice.tools import normalize_tools

from .conftest import EXAMPLE_NAMES, PINNED_DATE, load_example

SLOTS = 4


class ClientGone(Exception):
    pass


@pytest.fixture(scope="module")
def engine(standin_path) -> BatchEngine:
    settings = Settings(date_string=PINNED_DATE, n_ctx=2048, n_threads=1, max_tokens=64, n_parallel=SLOTS)
    with ToolCaller.load(str(standin_path), settings) as caller:
        yield BatchEngine(caller)


def cases() -> list[tuple[list, str]]:
    out = []
    for name in EXAMPLE_NAMES:
        tools, case = load_example(name)
        out += [(tools, query) for query in case["queries"][:2]]
    return out


def admit(engine: BatchEngine, tools: list, query: str, **kwargs):
    return engine.admit(prepare_messages(query, tools), tools, query=query, **kwargs)


def run(engine: BatchEngine, batch: list[tuple[list, str]], settings=None) -> list:
    """Admit every request at once, step until all end; the results in order."""
    requests = [admit(engine, tools, query, settings=settings) for tools, query in batch]
    results = {}
    while engine.active:
        for req, error in engine.step():
            assert error is None, error
            results[id(req)] = engine.finish(req)
    assert sorted(engine.free) == list(range(SLOTS))
    return [results[id(req)] for req in requests]


def test_batched_answers_equal_the_same_requests_alone(engine):
    todo = cases()
    alone = [run(engine, [case])[0] for case in todo]
    together = []
    for start in range(0, len(todo), SLOTS):  # groups of four, then shifted by one: other neighbours
        together += run(engine, todo[start:start + SLOTS])
    shifted = run(engine, todo[1:1 + SLOTS])
    for (tools, query), a, b in zip(todo, alone, together):
        assert b.text == a.text, f"{query!r}: batched {b.text!r} differs from alone {a.text!r}"
        assert b.calls is not None and not validate_calls(b.calls, normalize_tools(tools))
    assert [r.text for r in shifted] == [r.text for r in alone[1:1 + SLOTS]]
    assert max(r.timings["decode_steps"] for r in together) <= 64


@pytest.mark.parametrize("budget", [5, 45])
def test_budget_cut_is_closed_validly_beside_others(engine, budget):
    tools, case = load_example("parallel")  # the stand-in repeats calls until the budget stops it
    settings = engine.caller.settings.with_(max_tokens=budget)
    others = cases()[:SLOTS - 1]
    alone = run(engine, [(tools, case["queries"][0])], settings)[0]
    results = run(engine, [(tools, case["queries"][0])] + others, settings)
    assert results[0].text == alone.text
    for result, (tools_i, _) in zip(results, [(tools, None)] + others):
        assert result.calls is not None and not validate_calls(result.calls, normalize_tools(tools_i))
        if result.finish_reason == "budget":
            assert result.truncated


def test_a_released_request_frees_its_slot_and_leaves_others_alone(engine):
    todo = cases()
    alone = run(engine, [todo[1]])[0]
    seen: list[list[int]] = []

    def stop_after_three(tokens: list[int]) -> None:  # as the server's streaming callback does
        seen.append(tokens)
        if len(seen) > 3:
            raise ClientGone()

    kept = admit(engine, *todo[1])
    dropped = admit(engine, *todo[0], on_tokens=stop_after_three)
    fillers = [admit(engine, *todo[2]), admit(engine, *todo[3])]
    with pytest.raises(OndeviceError, match="slots are busy"):
        admit(engine, *todo[4])
    results = {}
    while engine.active:
        for req, error in engine.step():
            if req is dropped:
                assert isinstance(error, ClientGone)
                engine.release(req)
                assert engine.free  # the slot is free again at once
            else:
                assert error is None
                results[id(req)] = engine.finish(req)
    assert results[id(kept)].text == alone.text
    assert all(id(f) in results for f in fillers)
    assert sorted(engine.free) == list(range(SLOTS))
    assert run(engine, [todo[0]])[0].calls is not None  # the freed slot serves again


def test_load_time_settings_are_checked(engine):
    with pytest.raises(SettingsError):
        Settings(n_parallel=0)
    with pytest.raises(SettingsError, match="n_parallel"):
        admit(engine, *cases()[0], settings=engine.caller.settings.with_(n_parallel=2))
    with pytest.raises(OndeviceError, match="constrained"):
        admit(engine, *cases()[0], settings=engine.caller.settings.with_(constrained=False))


def test_the_native_format_batches_too(engine):
    # Hermes blocks, the empty answer ending at the end-of-turn token: the same answers alone and together.
    settings = engine.caller.settings.with_(tool_format="native", no_call="list")
    todo = [(tools, query) for tools, query in cases()[:SLOTS]]

    def admit_native(tools, query):
        return engine.admit(prepare_messages(query, tools, None, "native"), tools, settings, query=query)

    def run_native(batch):
        requests = [admit_native(tools, query) for tools, query in batch]
        results = {}
        while engine.active:
            for req, error in engine.step():
                assert error is None, error
                results[id(req)] = engine.finish(req)
        return [results[id(req)] for req in requests]

    alone = [run_native([case])[0] for case in todo]
    together = run_native(todo)
    assert [r.text for r in together] == [r.text for r in alone]
    for (tools, _), result in zip(todo, together):
        assert result.calls is not None and validate_calls(result.calls, normalize_tools(tools or [])) == []
        assert result.text == "" or result.text.startswith("<tool_call>\n")
