"""Benchmarks: BFCL accuracy with and without the grammar, speed and memory, quantization quality.

Each benchmark writes a small JSON summary under ``bench/results/`` (committed) and, where it has
per-case records, a JSONL file under ``bench/results/raw/`` (not committed). ``ondevice bench report``
turns the summaries into ``docs/benchmarks.md`` and PNG plots.

Bench-only dependencies (``bfcl-eval``, ``matplotlib``) are imported lazily, inside the functions that
need them, so that ``ondevice --help`` works on an install without them.
"""

from __future__ import annotations

from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
RESULTS_DIR = BENCH_DIR / "results"
RAW_DIR = RESULTS_DIR / "raw"
