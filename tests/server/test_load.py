"""Load: 8 concurrent clients mixing two tool sets on the real server (default --parallel 4): 6
requests each on the stand-in, 3 each on Qwen2.5-Coder (no_call text: sentences batched too), and 2
each on the stand-in's /v1/messages (the anthropic client). Zero errors, every answer valid against
its tools, each equal to the same request made alone (greedy)."""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from .conftest import MODEL, QWEN, anthropic_tools, calls_of, check_valid, openai_tools

CLIENTS = 8
REQUESTS_PER_CLIENT = 6
MAX_TOKENS = 64  # every case below completes within it (a stream cut by the budget ends differently: docs/server.md, Streaming)
TIME_LIMIT_S = 900  # a bound against a hang, not a speed check (speed lives in `ondevice bench serve`)

CASES = [
    ("simple", "What's the weather like in New York in fahrenheit?"),
    ("simple", "Is it raining in London?"),
    ("simple", "Search for the latest news on AI"),          # two calls
    ("multiple", "What is the capital of Brazil?"),
    ("multiple", "How many people live in Japan?"),          # two calls
    ("multiple", "Which is the largest city of Canada?"),    # two calls
]


def request(client, case: int, stream: bool, model: str = MODEL) -> tuple[list[tuple[str, str]], str, str]:
    """(calls, finish_reason, content) of one case, asked plainly or streamed."""
    example, query = CASES[case]
    kwargs = dict(model=model, messages=[{"role": "user", "content": query}], tools=openai_tools(example),
                  max_tokens=MAX_TOKENS)
    if not stream:
        choice = client.chat.completions.create(**kwargs).choices[0]
        return calls_of(choice.message), choice.finish_reason, choice.message.content or ""
    parts: dict[int, list[str]] = {}
    finish, content = "", ""
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            parts.setdefault(delta.index, [delta.function.name, ""])[1] += delta.function.arguments or ""
        if chunk.choices:
            content += chunk.choices[0].delta.content or ""
            finish = chunk.choices[0].finish_reason or finish
    return [tuple(parts[i]) for i in sorted(parts)], finish, content


def messages_request(client, case: int, stream: bool, model: str = MODEL) -> tuple[list[tuple[str, str]], str, str]:
    """(calls, stop_reason, text) of one case on /v1/messages, asked plainly or streamed (the
    message the anthropic client assembles from the events)."""
    example, query = CASES[case]
    kwargs = dict(model=model, messages=[{"role": "user", "content": query}], tools=anthropic_tools(example),
                  max_tokens=MAX_TOKENS)
    if stream:
        with client.messages.stream(**kwargs) as events:
            message = events.get_final_message()
    else:
        message = client.messages.create(**kwargs)
    calls = [(b.name, json.dumps(b.input)) for b in message.content if b.type == "tool_use"]
    reason = "length" if message.stop_reason == "max_tokens" else message.stop_reason
    return calls, reason, "".join(b.text for b in message.content if b.type == "text")


def test_eight_concurrent_clients_messages(server):
    pytest.importorskip("anthropic", reason="pip install anthropic")
    run_load(server, MODEL, 2, ask=messages_request, client_of=lambda srv: srv.anthropic())


@pytest.mark.parametrize("model,per_client", [(MODEL, REQUESTS_PER_CLIENT), (QWEN, 3)])
def test_eight_concurrent_clients(request_fixture, model, per_client):
    server = request_fixture(model)
    run_load(server, model, per_client)


@pytest.fixture
def request_fixture(request):
    return lambda model: request.getfixturevalue("server" if model == MODEL else "qwen_server")


def run_load(server, model: str, per_client: int, ask=request, client_of=lambda srv: srv.client()) -> None:
    """`ask` (the chat or the messages request) from 8 clients of `client_of(server)` at once."""
    client = client_of(server)
    alone = {case: ask(client, case, stream=False, model=model) for case in range(len(CASES))}
    for case, (calls, finish, _) in alone.items():
        assert finish != "length", f"case {case} must complete within max_tokens: {calls}"
        check_valid(calls, openai_tools(CASES[case][0]))

    rng = random.Random(0)
    plans = [[rng.randrange(len(CASES)) for _ in range(per_client)] for _ in range(CLIENTS)]

    def run_client(index: int) -> list[tuple[int, list]]:
        own = client_of(server)  # one connection pool per client, as separate programs would have
        # every fourth request streamed, so streaming and plain answers interleave too
        return [(case, ask(own, case, stream=(i + index) % 4 == 0, model=model))
                for i, case in enumerate(plans[index])]

    start = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [f.result(timeout=TIME_LIMIT_S) for f in [pool.submit(run_client, i) for i in range(CLIENTS)]]
    assert time.monotonic() - start < TIME_LIMIT_S

    answers = [answer for per_client in results for answer in per_client]
    assert len(answers) == CLIENTS * per_client
    for case, answer in answers:
        assert answer == alone[case], f"case {case}: {answer} differs from the answer alone {alone[case]}"
        check_valid(answer[0], openai_tools(CASES[case][0]))
