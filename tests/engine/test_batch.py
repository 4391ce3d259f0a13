"""The engine on the real stand-in: one decode loop for one request and for many. Several sessions
step together, each in its own sequence; every answer is valid and (greedy) equal to the same
request alone, whatever runs beside it, in every mode: list, sentence answers, threshold, native
blocks, speculation. A single call (`ToolCaller.call`) is a batch of one."""

from __future__ import annotations

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import OndeviceError, SettingsError, ToolSchemaError
from ondevice.formats.blocks import validate_calls
from ondevice.formats.prompt import prepare_messages
from ondevice.schema.tools import normalize_tools

from ..common import EXAMPLE_NAMES, PINNED_DATE, load_example

SLOTS = 4


class ClientGone(Exception):
    pass


@pytest.fixture(scope="module")
def caller(standin_path) -> ToolCaller:
    settings = Settings(date_string=PINNED_DATE, n_ctx=2048, n_threads=1, max_tokens=64, n_parallel=SLOTS)
    with ToolCaller.load(str(standin_path), settings) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def engine(caller):
    return caller.engine


def cases() -> list[tuple[list, str]]:
    out = []
    for name in EXAMPLE_NAMES:
        tools, case = load_example(name)
        out += [(tools, query) for query in case["queries"][:2]]
    return out


def open_(engine, tools: list, query: str, settings=None, fmt: str = "card", **kwargs):
    s = settings or engine.settings
    return engine.open(prepare_messages(query, tools, None, fmt), tools, s, query=query, **kwargs)


def run(engine, batch: list[tuple[list, str]], settings=None, fmt: str = "card") -> list:
    """Open every request at once, step until all end; the results in order."""
    sessions = [open_(engine, tools, query, settings, fmt) for tools, query in batch]
    results = {}
    while engine.active:
        for session, error in engine.step():
            assert error is None, error
            results[id(session)] = engine.result(session)
    assert sorted(engine.free) == list(range(SLOTS))
    return [results[id(s)] for s in sessions]


def assert_same_alone_and_together(engine, todo, settings=None, fmt="card"):
    alone = [run(engine, [case], settings, fmt)[0] for case in todo]
    together = []
    for start in range(0, len(todo), SLOTS):  # groups of four, then shifted by one: other neighbours
        together += run(engine, todo[start:start + SLOTS], settings, fmt)
    shifted = run(engine, todo[1:1 + SLOTS], settings, fmt)
    for (tools, query), a, b in zip(todo, alone, together):
        assert b.text == a.text, f"{query!r}: batched {b.text!r} differs from alone {a.text!r}"
        assert b.calls is not None and not validate_calls(b.calls, normalize_tools(tools or []))
    assert [r.text for r in shifted] == [r.text for r in alone[1:1 + SLOTS]]
    return alone


def test_batched_answers_equal_the_same_requests_alone(engine):
    alone = assert_same_alone_and_together(engine, cases())
    assert max(r.timings["decode_steps"] for r in alone) <= 64


def test_a_call_is_a_batch_of_one(caller, engine):
    for tools, query in cases()[:4]:
        via_call = caller.call(query, tools)
        via_engine = run(engine, [(tools, query)])[0]
        assert via_call.text == via_engine.text


@pytest.mark.parametrize("no_call", ["text", "threshold"])
def test_sentence_answers_batch_too(engine, no_call):
    # The fine-tune's and Qwen's manifests answer "no call" with a sentence: served batched as well.
    settings = engine.settings.with_(no_call=no_call, no_call_threshold=0.3)
    alone = assert_same_alone_and_together(engine, cases()[:SLOTS + 1], settings)
    assert all(r.no_call_probability is not None for r in alone)
    assert any(r.message for r in alone) or any(r.calls for r in alone)


def test_the_native_format_batches_too(engine):
    # Hermes blocks, the empty answer ending at the end-of-turn token: the same answers alone and together.
    settings = engine.settings.with_(tool_format="native", no_call="list")
    alone = assert_same_alone_and_together(engine, cases()[:SLOTS + 1], settings, "native")
    assert all(r.text == "" or r.text.startswith("<tool_call>\n") for r in alone)


def test_speculation_runs_beside_others(engine):
    todo = cases()[:SLOTS]
    with_drafts = run(engine, todo)
    without = run(engine, todo, engine.settings.with_(speculate=False))
    assert [r.text for r in with_drafts] == [r.text for r in without]
    assert sum(r.timings["drafted_tokens"] for r in with_drafts) > 0
    assert sum(r.timings["drafted_tokens"] for r in without) == 0


@pytest.mark.parametrize("budget", [5, 45])
def test_budget_cut_is_closed_validly_beside_others(engine, budget):
    tools, case = load_example("parallel")
    settings = engine.settings.with_(max_tokens=budget)
    others = cases()[:SLOTS - 1]
    alone = run(engine, [(tools, case["queries"][0])], settings)[0]
    results = run(engine, [(tools, case["queries"][0])] + others, settings)
    assert results[0].text == alone.text
    for result, (tools_i, _) in zip(results, [(tools, None)] + others):
        assert result.calls is not None and not validate_calls(result.calls, normalize_tools(tools_i))
        if result.finish_reason == "budget":
            assert result.truncated


def test_a_released_session_frees_its_sequence_and_leaves_others_alone(engine):
    todo = cases()
    alone = run(engine, [todo[1]])[0]
    seen: list[list[int]] = []

    def stop_after_three(tokens: list[int]) -> None:  # as the server's streaming callback does
        seen.append(tokens)
        if len(seen) > 3:
            raise ClientGone()

    kept = open_(engine, *todo[1])
    dropped = open_(engine, *todo[0], on_tokens=stop_after_three)
    fillers = [open_(engine, *todo[2]), open_(engine, *todo[3])]
    with pytest.raises(OndeviceError, match="sequences are busy"):
        open_(engine, *todo[4])
    results = {}
    while engine.active:
        for session, error in engine.step():
            if session is dropped:
                assert isinstance(error, ClientGone)
                engine.release(session)
                assert engine.free  # the sequence is free again at once
            else:
                assert error is None
                results[id(session)] = engine.result(session)
    assert results[id(kept)].text == alone.text
    assert all(id(f) in results for f in fillers)
    assert sorted(engine.free) == list(range(SLOTS))
    assert run(engine, [todo[0]])[0].calls is not None  # the freed sequence serves again


def test_load_time_settings_are_checked(caller):
    with pytest.raises(SettingsError):
        Settings(n_parallel=0)
    with pytest.raises(SettingsError, match="batching"):
        Settings(batching="sometimes")
    tools, query = cases()[0]
    with pytest.raises(SettingsError, match="n_parallel"):
        caller.call(query, tools, settings=caller.settings.with_(n_parallel=2))


def test_a_step_limit_names_the_tool_in_the_native_format_beside_others(engine):
    # Regression: the old batched path named the tool from a card-format grammar in the native format.
    evil = {"name": "evil", "parameters": {"type": "object", "required": ["x"], "properties": {
        "x": {"type": "string", "pattern": "^(a|b)*a(a|b){12}$"}}}}
    settings = engine.settings.with_(tool_format="native", no_call="list", grammar_step_fuel=50, max_tokens=40)
    other = open_(engine, *cases()[0])
    try:
        with pytest.raises(ToolSchemaError, match="'evil'.*grammar_step_fuel"):
            session = open_(engine, [evil], "Call evil", settings, "native")
            while session.wants() is not None:
                for ended, error in engine.step([session]):
                    if error is not None:
                        raise error
    finally:
        for session in list(engine.active):
            engine.release(session)
    assert other not in engine.active and sorted(engine.free) == list(range(SLOTS))


def test_shared_batching_answers_validly(standin_path):
    # One llama_decode for every session: faster on memory-bound hardware; answers valid (they may
    # differ from the request alone in a near tie, see engine.py).
    settings = Settings(date_string=PINNED_DATE, n_ctx=1024, n_threads=1, max_tokens=48, n_parallel=SLOTS,
                        batching="shared")
    with ToolCaller.load(str(standin_path), settings) as caller:
        results = run(caller.engine, cases()[:SLOTS])
    for (tools, _), result in zip(cases()[:SLOTS], results):
        assert result.calls is not None and not validate_calls(result.calls, normalize_tools(tools))
