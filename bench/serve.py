"""`ondevice bench serve`: throughput and latency of `ondevice serve` with 1, 2, 4 and 8 concurrent clients.

The real server runs as a subprocess on a free loopback port; each client is a thread with its own
HTTP connection, sending the card's examples (their first query, tool_choice auto, greedy) one after
another. Reported per client count: requests answered per second (each answer is one tool-call list),
tool calls per second, p50 / p95 latency, errors; and the 4-client / 1-client throughput ratio. With
one worker owning the model (requests queue), the ratio stays near 1: concurrency buys fairness and
isolation, not throughput, until decode steps of several requests are batched.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

from ondevice_bench.examples import PINNED_DATE as DATE_STRING

EXAMPLES = ["simple", "multiple", "parallel", "parallel_multiple", "multi_turn", "wrong_tool"]


def _cases() -> list[dict[str, Any]]:
    from ondevice_bench.examples import load_example

    cases = []
    for name in EXAMPLES:
        tools, case = load_example(name)
        tools = [t if t.get("type") == "function" else {"type": "function", "function": t} for t in tools]
        cases.append({"name": name, "tools": tools, "query": case["queries"][0]})
    return cases


class _Server:
    def __init__(self, model: Path, threads: Optional[int], n_ctx: int, parallel: Optional[int] = None,
                 batching: Optional[str] = None):
        args = [sys.executable, "-m", "ondevice", "serve", "--port", "0", "--model", str(model), "--n-ctx",
                str(n_ctx), "--date-string", DATE_STRING]
        if parallel:
            args += ["--parallel", str(parallel)]
        if batching:
            args += ["--batching", batching]
        if threads:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True, env=dict(os.environ))
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stdout], daemon=True).start()
        try:
            line = lines.get(timeout=600)
        except queue.Empty:
            self.stop()
            raise RuntimeError("ondevice serve printed no ready line within 600 s") from None
        url = line.strip().rsplit(" on http://", 1)[-1].removesuffix("/v1")
        self.host, port = url.rsplit(":", 1)
        self.port = int(port)
        self.model_id = line.split(" serving ", 1)[1].split(" on ", 1)[0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _client(server: _Server, bodies: list[bytes], out: list[tuple[float, int, Optional[str]]]) -> None:
    conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
    for body in bodies:
        start = time.perf_counter()
        try:
            conn.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read())
            if response.status != 200:
                out.append((time.perf_counter() - start, 0, f"{response.status}: {payload['error']['message']}"))
                continue
            calls = len(payload["choices"][0]["message"].get("tool_calls") or [])
            out.append((time.perf_counter() - start, calls, None))
        except Exception as exc:  # counted, reported; the run goes on
            out.append((time.perf_counter() - start, 0, f"{type(exc).__name__}: {exc}"))
            conn.close()
            conn = http.client.HTTPConnection(server.host, server.port, timeout=600)
    conn.close()


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def measure(server: _Server, clients: int, requests: int, max_tokens: int) -> dict[str, Any]:
    """`clients` threads, each sending `requests` requests (the examples in turn, offset per client)."""
    cases = _cases()
    results: list[list[tuple[float, int, Optional[str]]]] = [[] for _ in range(clients)]
    threads = []
    for c in range(clients):
        bodies = [json.dumps({"model": server.model_id, "max_tokens": max_tokens,
                              "messages": [{"role": "user", "content": cases[(c + i) % len(cases)]["query"]}],
                              "tools": cases[(c + i) % len(cases)]["tools"]}).encode() for i in range(requests)]
        threads.append(threading.Thread(target=_client, args=(server, bodies, results[c])))
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    flat = [r for per in results for r in per]
    ok = [r for r in flat if r[2] is None]
    latencies = [r[0] for r in ok]
    return {
        "clients": clients,
        "requests": len(flat),
        "errors": len(flat) - len(ok),
        "first_error": next((r[2] for r in flat if r[2] is not None), None),
        "wall_s": round(wall, 3),
        "requests_per_s": round(len(ok) / wall, 3),
        "tool_calls_per_s": round(sum(r[1] for r in ok) / wall, 3),
        "p50_s": round(statistics.median(latencies), 3) if latencies else None,
        "p95_s": round(_percentile(latencies, 0.95), 3) if latencies else None,
    }


def _target(args: Any) -> tuple[str, Path]:
    from .common import log

    if args.model:
        from ondevice.models.catalog import resolve

        resolved = resolve(args.model)
        return resolved.alias or resolved.path.stem, resolved.path
    if args.shape == "1b":
        from .fixtures.synthetic import ensure_random_llama_1b_gguf

        log("[serve] random-weight Llama-3.2-1B-shape GGUF, Q4_K_M (built once, then cached)...")
        return "random-1b-Q4_K_M", ensure_random_llama_1b_gguf("Q4_K_M")
    from ondevice.models.assets import STANDIN_ALIAS, standin_gguf_path

    return STANDIN_ALIAS, standin_gguf_path()


def run(args: Any) -> int:
    from . import RESULTS_DIR
    from .common import command_line, git_commit, log, machine_info, utc_now, write_json

    label, path = _target(args)
    counts = [int(c) for c in args.clients.split(",") if c.strip()]
    log(f"[serve] starting ondevice serve on {path.name} ...")
    server = _Server(path, args.threads, args.n_ctx, getattr(args, "parallel", None), getattr(args, "batching", None))
    rows = []
    try:
        log("[serve] warm-up: each example once (tool prefixes into the prefix cache)")
        measure(server, 1, len(EXAMPLES), args.max_tokens)
        for clients in counts:
            log(f"[serve] {clients} client(s) x {args.requests} requests ...")
            rows.append(measure(server, clients, args.requests, args.max_tokens))
            log(f"[serve]   {rows[-1]}")
    finally:
        server.stop()
    by_clients = {r["clients"]: r for r in rows}
    ratio = None
    if 1 in by_clients and 4 in by_clients and by_clients[1]["requests_per_s"]:
        ratio = round(by_clients[4]["requests_per_s"] / by_clients[1]["requests_per_s"], 3)
    summary = {
        "benchmark": "serve",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": label,
        "settings": {"threads": args.threads, "n_ctx": args.n_ctx, "max_tokens": args.max_tokens,
                     "parallel": getattr(args, "parallel", None), "batching": getattr(args, "batching", None), "requests_per_client": args.requests, "examples": EXAMPLES, "date_string": DATE_STRING},
        "results": rows,
        "throughput_4_over_1": ratio,
    }
    out = Path(args.out) if args.out else RESULTS_DIR / f"serve-{label}.json"
    write_json(out, summary)
    print(format_table(summary))
    log(f"[serve] wrote {out}")
    return 0


def format_table(summary: dict[str, Any]) -> str:
    lines = [f"ondevice serve, {summary['model']}, max_tokens {summary['settings']['max_tokens']}",
             "| clients | requests | errors | requests/s | tool calls/s | p50 s | p95 s |",
             "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["results"]:
        lines.append(f"| {r['clients']} | {r['requests']} | {r['errors']} | {r['requests_per_s']} | "
                     f"{r['tool_calls_per_s']} | {r['p50_s']} | {r['p95_s']} |")
    lines.append(f"4-client / 1-client throughput: {summary['throughput_4_over_1']}")
    return "\n".join(lines)
