"""Load: 8 concurrent clients x 25 requests mixing two tool sets, on the real server and the stand-in.
Zero errors, every answer valid against its tools, each equal to the same request made alone (greedy)."""

from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor

from .conftest import MODEL, calls_of, check_valid, openai_tools

CLIENTS = 8
REQUESTS_PER_CLIENT = 25
MAX_TOKENS = 64  # every case below completes within it (a stream cut by the budget ends differently: README)
TIME_LIMIT_S = 900  # a bound against a hang, not a speed check (speed lives in `ondevice bench serve`)

CASES = [
    ("simple", "What's the weather like in New York in fahrenheit?"),
    ("simple", "Is it raining in London?"),
    ("simple", "Search for the latest news on AI"),          # two calls
    ("multiple", "What is the capital of Brazil?"),
    ("multiple", "How many people live in Japan?"),          # two calls
    ("multiple", "Which is the largest city of Canada?"),    # two calls
]


def request(client, case: int, stream: bool) -> tuple[list[tuple[str, str]], str]:
    """(calls, finish_reason) of one case, asked plainly or streamed."""
    example, query = CASES[case]
    kwargs = dict(model=MODEL, messages=[{"role": "user", "content": query}], tools=openai_tools(example),
                  max_tokens=MAX_TOKENS)
    if not stream:
        choice = client.chat.completions.create(**kwargs).choices[0]
        return calls_of(choice.message), choice.finish_reason
    parts: dict[int, list[str]] = {}
    finish = ""
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        for delta in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
            parts.setdefault(delta.index, [delta.function.name, ""])[1] += delta.function.arguments or ""
        if chunk.choices and chunk.choices[0].finish_reason:
            finish = chunk.choices[0].finish_reason
    return [tuple(parts[i]) for i in sorted(parts)], finish


def test_eight_concurrent_clients(server):
    client = server.client()
    alone = {case: request(client, case, stream=False) for case in range(len(CASES))}
    for case, (calls, finish) in alone.items():
        assert finish == "tool_calls", f"case {case} must complete within max_tokens: {calls}"
        check_valid(calls, openai_tools(CASES[case][0]))

    rng = random.Random(0)
    plans = [[rng.randrange(len(CASES)) for _ in range(REQUESTS_PER_CLIENT)] for _ in range(CLIENTS)]

    def run_client(index: int) -> list[tuple[int, list]]:
        own = server.client()  # one connection pool per client, as separate programs would have
        # every fourth request streamed, so streaming and plain answers interleave too
        return [(case, request(own, case, stream=(i + index) % 4 == 0)) for i, case in enumerate(plans[index])]

    start = time.monotonic()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = [f.result(timeout=TIME_LIMIT_S) for f in [pool.submit(run_client, i) for i in range(CLIENTS)]]
    assert time.monotonic() - start < TIME_LIMIT_S

    answers = [answer for per_client in results for answer in per_client]
    assert len(answers) == CLIENTS * REQUESTS_PER_CLIENT
    for case, answer in answers:
        assert answer == alone[case], f"case {case}: {answer} differs from the answer alone {alone[case]}"
        check_valid(answer[0], openai_tools(CASES[case][0]))
