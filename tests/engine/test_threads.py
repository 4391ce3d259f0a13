"""One ToolCaller shared by threads: calls are serialized, each answer is the one it gets alone (issue 14)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import CallerClosedError

from ..common import PINNED_DATE, load_example

# Queries start with distinct words, so each call evaluates its whole query on top of the tools prefix
# (never a few cached query tokens): every call then starts from the same KV state as when made alone.
QUERIES = ["What's the weather in Paris?", "Search the news about Mars", "Tell me the weather in Oslo, celsius",
           "Find recipes with tomatoes"]
LOADED = Settings(date_string=PINNED_DATE, n_ctx=2048)
GREEDY = LOADED.with_(max_tokens=12)


@pytest.fixture(scope="module")
def threaded(standin_path):
    with ToolCaller.load(str(standin_path), LOADED) as c:
        yield c


def test_eight_threads_ten_calls_two_tool_sets(threaded):
    tool_sets = [load_example("simple")[0], load_example("multiple")[0]]
    jobs = [(q, t) for t in range(2) for q in QUERIES]
    for tools in tool_sets:  # evaluate both tools prefixes once, as every later call finds them
        threaded.call("hello", tools, settings=GREEDY.with_(max_tokens=1))
    alone = {job: threaded.call(job[0], tool_sets[job[1]], settings=GREEDY).text for job in jobs}

    def worker(w: int) -> list[tuple[tuple[str, int], str]]:
        out = []
        for i in range(10):
            job = jobs[(w * 3 + i * 5) % len(jobs)]  # both tool sets interleave across threads
            out.append((job, threaded.call(job[0], tool_sets[job[1]], settings=GREEDY).text))
        return out

    with ThreadPoolExecutor(8) as pool:
        results = [r for rs in pool.map(worker, range(8)) for r in rs]
    assert len(results) == 80
    assert {job for job, _ in results} == set(jobs)
    mismatches = [(job, text, alone[job]) for job, text in results if text != alone[job]]
    assert not mismatches


def test_conversation_from_threads(threaded):
    tools = load_example("multi_turn")[0]
    conversation = threaded.conversation(tools)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda q: conversation.ask(q, GREEDY), QUERIES[:4]))
    roles = [m["role"] for m in conversation.messages]
    assert roles == ["system", "user", "assistant"] + ["user", "assistant"] * 3  # turns never interleave


def test_close_while_calls_run(standin_path):
    caller = ToolCaller.load(str(standin_path), LOADED)
    tools = load_example("simple")[0]
    started = threading.Event()
    outcomes: list[list[str]] = [[], [], []]

    def worker(mine: list[str]) -> None:
        started.set()
        for _ in range(5):
            try:
                caller.call(QUERIES[0], tools, settings=GREEDY)
                mine.append("ok")
            except CallerClosedError:
                mine.append("closed")

    threads = [threading.Thread(target=worker, args=(mine,)) for mine in outcomes]
    for t in threads:
        t.start()
    started.wait()
    caller.close()  # waits for the running call, then later calls get a clear error
    for t in threads:
        t.join()
    assert all(len(mine) == 5 for mine in outcomes)
    assert any("closed" in mine for mine in outcomes)
    for mine in outcomes:  # a call either finished or was refused: once closed, always closed
        assert mine == sorted(mine, key=lambda o: o == "closed")
    with pytest.raises(CallerClosedError, match="closed: load a new one"):
        caller.call(QUERIES[0], tools)
