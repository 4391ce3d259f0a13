"""Two processes on the same cores: `ondevice bench contention`.

Each measurement runs in fresh worker processes. A worker loads the model, answers the call once with
a budget of one token (so the tools and query are evaluated and cached), prints ``ready``, waits for
``go`` on stdin, then times the same call with the full budget and prints its timings as JSON.

- alone: one worker at a time (`repeats` workers, median).
- together: two workers started together, both told ``go`` at the same moment; each one's wall time
  is divided by the alone median (fair sharing of the cores gives about 2).

Each mode is one way llama.cpp's OpenMP threads wait (see ondevice/wait_policy.py): ``runtime``, what
``import ondevice`` sets (``GOMP_SPINCOUNT=1000``); ``passive`` (``OMP_WAIT_POLICY=PASSIVE``: never
spin); ``default`` (libgomp's own: 300,000 spins; the worker imports ``llama_cpp`` before ``ondevice``
with neither variable set, so the runtime's setting cannot apply); ``spin:N`` (``GOMP_SPINCOUNT=N``).
The alone runs also give the single-process decode speed (output tokens / decode seconds) in each
mode. A pair that runs longer than ``--timeout`` is stopped and reported as at least that slow.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any, Optional

MODES = {
    "runtime": "the runtime's setting: GOMP_SPINCOUNT=1000 set by ondevice before llama.cpp loads",
    "passive": "OMP_WAIT_POLICY=PASSIVE: idle threads never spin",
    "default": "libgomp's default (neither variable set; idle threads spin 300,000 times before sleeping)",
}
_OMP_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")


# --------------------------------------------------------------------------------------------- worker


def worker(params: dict[str, Any]) -> int:
    """One process: load, warm up, wait for `go`, time one call, print its timings."""
    mode = params["mode"]
    if mode == "passive":
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    elif mode.startswith("spin:"):
        os.environ["GOMP_SPINCOUNT"] = mode.split(":", 1)[1]
    if mode != "runtime":
        import llama_cpp  # noqa: F401  (loads libgomp before ondevice can set how its threads wait)
    waiting = {name: os.environ[name] for name in _OMP_VARIABLES if name in os.environ}
    from ondevice import Settings, ToolCaller

    settings = Settings(n_ctx=params["n_ctx"], n_threads=params["threads"], date_string="26 Jul 2024",
                        max_tokens=params["max_tokens"])
    caller = ToolCaller.load(params["model"], settings)
    query, tools = params["query"], params["tools"]
    caller.call(query, tools, settings=settings.with_(max_tokens=1))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    t0 = time.perf_counter()
    res = caller.call(query, tools)
    wall = time.perf_counter() - t0
    t = res.timings
    out_tokens = t["sampled_tokens"] + t["forced_tokens"]
    print(json.dumps({"wall_s": round(wall, 4), "decode_s": t["decode_s"], "output_tokens": out_tokens,
                      "decode_tok_s": round(out_tokens / t["decode_s"], 2) if t["decode_s"] else None,
                      "omp_environment_at_load": waiting, "pid": os.getpid()}), flush=True)
    return 0


# --------------------------------------------------------------------------------------------- parent


def _env(mode: str) -> dict[str, str]:
    env = dict(os.environ)
    for name in _OMP_VARIABLES:  # each mode sets its own in the worker, before llama.cpp loads
        env.pop(name, None)
    return env


# Not `python -m ondevice`: importing the ondevice package sets the wait policy, which mode "default" avoids.
# (ondevice_bench's own __init__ imports nothing from ondevice.)
_WORKER = "import json, sys; from ondevice_bench.contention import worker; sys.exit(worker(json.loads(sys.argv[1])))"


def _start(params: dict[str, Any]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, json.dumps(params)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=_env(params["mode"]),
    )


def run_together(params: dict[str, Any], n: int, timeout: float) -> list[Optional[dict[str, Any]]]:
    """Start `n` workers, wait until all are ready, say go to all at once; None for a worker stopped by timeout."""
    procs = [_start(params) for _ in range(n)]
    try:
        for p in procs:
            line = p.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"a contention worker failed before the timed call (exit {p.wait()}): {line!r}")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        deadline = time.monotonic() + timeout
        results: list[Optional[dict[str, Any]]] = []
        for p in procs:
            try:
                out, _ = p.communicate(timeout=max(0.1, deadline - time.monotonic()))
                results.append(json.loads(out.strip().splitlines()[-1]))
            except subprocess.TimeoutExpired:
                results.append(None)
        return results
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def run(args: Any) -> int:
    from ondevice.models.catalog import resolve

    from . import RESULTS_DIR
    from .common import command_line, git_commit, log, machine_info, utc_now, write_json
    from .speed import card_examples

    ex = next(e for e in card_examples() if e["name"] == args.example)
    resolved = resolve(args.model)
    params = {"model": str(resolved.path), "threads": args.threads, "n_ctx": args.n_ctx,
              "max_tokens": args.max_tokens, "query": ex["query"], "tools": ex["tools"]}
    results: dict[str, Any] = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        if mode not in MODES and not (mode.startswith("spin:") and mode[5:].isdigit()):
            raise ValueError(f"--modes: expected a list of {sorted(MODES)}, got {mode!r}")
        p = dict(params, mode=mode)
        alone = []
        for i in range(args.repeats):
            (r,) = run_together(p, 1, args.timeout)
            if r is None:
                raise RuntimeError(f"a single call ran longer than --timeout {args.timeout}s: raise it")
            alone.append(r)
            log(f"[contention] {mode}: alone {i + 1}/{args.repeats}: {r['wall_s']:.2f}s, {r['decode_tok_s']} tok/s")
        alone_s = statistics.median(r["wall_s"] for r in alone)
        pairs = []
        for i in range(args.repeats):
            pair = run_together(p, 2, args.timeout)
            walls = [r["wall_s"] if r else None for r in pair]
            pairs.append({"wall_s": walls, "vs_alone": [round(w / alone_s, 2) if w else None for w in walls],
                          "timed_out": any(r is None for r in pair)})
            log(f"[contention] {mode}: together {i + 1}/{args.repeats}: {walls} "
                f"(x{pairs[-1]['vs_alone']} of alone)")
        ratios = [r if r is not None else args.timeout / alone_s for pr in pairs for r in pr["vs_alone"]]
        results[mode] = {
            "description": MODES.get(mode, f"libgomp's default policy with GOMP_SPINCOUNT={mode[5:]}"),
            "alone_wall_s": round(alone_s, 4),
            "alone": alone,
            "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in alone), 2),
            "together": pairs,
            "together_vs_alone_max": round(max(ratios), 2),
            "together_vs_alone_median": round(statistics.median(ratios), 2),
            "any_timed_out": any(pr["timed_out"] for pr in pairs),
        }
    for mode in [m for m in results if m != "default"]:
        if "default" in results:
            results[mode]["decode_vs_default"] = round(results[mode]["decode_tok_s"] / results["default"]["decode_tok_s"], 3)
    summary = {
        "benchmark": "contention",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": resolved.alias or resolved.path.name,
        "settings": {"example": args.example, "max_tokens": args.max_tokens, "threads": args.threads,
                     "n_ctx": args.n_ctx, "repeats": args.repeats, "timeout_s": args.timeout},
        "results": results,
    }
    out = args.out or RESULTS_DIR / f"contention-{resolved.alias or resolved.path.stem}.json"
    write_json(out, summary)
    print(format_table(summary))
    log(f"[contention] wrote {out}")
    return 0


def format_table(summary: dict[str, Any]) -> str:
    lines = ["| how threads wait | alone s | decode tok/s alone | vs default | together / alone (median) | (worst) | timed out |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for mode, r in summary["results"].items():
        if not isinstance(r, dict):
            continue
        lines.append(f"| {mode} | {r['alone_wall_s']:.2f} | {r['decode_tok_s']} | {r.get('decode_vs_default', 1.0)} | {r['together_vs_alone_median']} "
                     f"| {r['together_vs_alone_max']} | {'yes' if r['any_timed_out'] else 'no'} |")
    return "\n".join(lines)
