"""Decode speed by weight placement, for `ondevice bench speed`: the placement ondevice chooses (repack
on, llama.cpp's AMX buffer type left out), `repack=False` (no extra buffer types), and the old default
(llama.cpp's whole list, AMX included where the build has it: what ONDEVICE_AMX=1 gives).

Each (repeat, mode) is a fresh child process, the modes interleaved repeat by repeat so that machine
load affects them alike: a mode that crashes llama.cpp (the old default on an AMX host) is recorded as
such, and the others still measure. Each child loads the file, evaluates a fixed prompt, and times
`decode_tokens` greedy llama_decode steps (the engine's LlamaModel, no grammar).
"""

from __future__ import annotations

import json
import os
import statistics
from pathlib import Path
from typing import Any, Optional

MODES = ("chosen", "no-repack", "old-default")

CHILD = """
import json, sys, time
import numpy as np
from ondevice import Settings
from ondevice.engine.llama import LlamaModel
path, mode, n_tokens, threads, n_ctx = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
t0 = time.perf_counter()
model = LlamaModel(path, Settings(n_ctx=n_ctx, n_threads=threads or None, repack=mode != "no-repack"))
load_s = time.perf_counter() - t0
prompt = model.tokenize("Write the weather report for New York, Paris and Tokyo for the next three days, " * 3)
t0 = time.perf_counter()
model.eval(prompt)
prompt_s = time.perf_counter() - t0
for _ in range(4):  # warm-up steps
    model.eval([int(np.argmax(model.logits()))])
t0 = time.perf_counter()
for _ in range(n_tokens):
    model.eval([int(np.argmax(model.logits()))])
decode_s = time.perf_counter() - t0
print(json.dumps({"decode_tok_s": n_tokens / decode_s, "prompt_tok_s": len(prompt) / prompt_s, "load_s": load_s,
                  "buffers": model.weight_buffers, "kept": list(model.placement.kept) if model.placement.repack else [],
                  "avoided": list(model.placement.avoided)}))
"""


def _env(mode: str) -> dict[str, str]:
    from ondevice.engine.hardware import AMX_ENV

    env = dict(os.environ)
    env.pop(AMX_ENV, None)
    if mode == "old-default":
        env[AMX_ENV] = "1"  # llama.cpp's own list, as before ondevice left AMX out
    return env


def measure_placements(path: Path, *, threads: Optional[int], n_ctx: int, decode_tokens: int, repeats: int,
                       modes: tuple[str, ...] = MODES) -> dict[str, Any]:
    """Decode tok/s per placement mode (median of `repeats` child processes) and the ratios to `chosen`."""
    import subprocess
    import sys

    from .common import log

    runs: dict[str, list[dict[str, Any]]] = {m: [] for m in modes}
    crashes: dict[str, str] = {}
    for rep in range(repeats):
        for mode in modes:
            if mode in crashes:
                continue
            r = subprocess.run([sys.executable, "-c", CHILD, str(path), mode, str(decode_tokens), str(threads or 0),
                                str(n_ctx)], capture_output=True, text=True, env=_env(mode), timeout=600)
            if r.returncode < 0:
                crashes[mode] = f"killed by signal {-r.returncode}"
                log(f"[speed] placement {mode}: llama.cpp crashed (signal {-r.returncode})")
                continue
            if r.returncode != 0:
                raise RuntimeError(f"placement {mode} failed (exit {r.returncode}): {r.stderr.strip()[-400:]}")
            runs[mode].append(json.loads(r.stdout.strip().splitlines()[-1]))
            log(f"[speed] placement {mode} repeat {rep + 1}/{repeats}: {runs[mode][-1]['decode_tok_s']:.2f} tok/s, "
                f"weights in {runs[mode][-1]['buffers']}")
    result: dict[str, Any] = {"file": path.name, "decode_tokens": decode_tokens, "repeats": repeats, "modes": {}}
    for mode in modes:
        got = runs[mode]
        result["modes"][mode] = {
            "decode_tok_s": round(statistics.median(r["decode_tok_s"] for r in got), 2) if got else None,
            "prompt_tok_s": round(statistics.median(r["prompt_tok_s"] for r in got), 1) if got else None,
            "load_s": round(statistics.median(r["load_s"] for r in got), 3) if got else None,
            "buffers": got[-1]["buffers"] if got else None,
            "extra_buffer_types": got[-1]["kept"] if got else None,
            "avoided": got[-1]["avoided"] if got else None,
            "crashed": crashes.get(mode),
            "runs_tok_s": [round(r["decode_tok_s"], 2) for r in got],
        }
    chosen = result["modes"].get("chosen", {}).get("decode_tok_s")
    result["decode_vs_chosen"] = {
        mode: (round(m["decode_tok_s"] / chosen, 3) if chosen and m["decode_tok_s"] else None)
        for mode, m in result["modes"].items()
    }
    return result


def format_placements(label: str, result: dict[str, Any]) -> str:
    """A markdown table: one row per mode."""
    lines = [f"placement ({label}, {result['decode_tokens']} tokens x {result['repeats']} interleaved runs):",
             "| mode | decode tok/s | / chosen | prompt tok/s | load s | weights in (MiB) |", "|---|---:|---:|---:|---:|---|"]
    for mode, m in result["modes"].items():
        buffers = ", ".join(f"{k} {v:.0f}" for k, v in (m["buffers"] or {}).items())
        lines.append(f"| {mode} | {m['decode_tok_s'] if m['decode_tok_s'] is not None else m['crashed']} | "
                     f"{result['decode_vs_chosen'][mode]} | {m['prompt_tok_s']} | {m['load_s']} | {buffers} |")
    return "\n".join(lines)
