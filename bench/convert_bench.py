"""Benchmark of the export step on the exact Llama-3.2-1B shape (random weights, 2.5 GB BF16):
HF checkpoint -> F16 GGUF -> Q4_K_M, wall time per stage and peak RSS above the Python baseline.

Each stage runs in its own subprocess, so its peak RSS (VmHWM) is its own; the baseline is that
process's RSS after importing numpy, gguf, llama_cpp and convert. Targets on the 2-core machine:
conversion peak RSS < 1 GiB above baseline (streaming, not loading) and HF -> Q4_K_M < 2 minutes.

  python -m ondevice_bench.convert_bench [--quant Q4_K_M] [--json out.json] [--keep]
"""

from __future__ import annotations

from ondevice import wait_policy  # noqa: F401  (before llama.cpp loads: see ondevice/wait_policy.py)

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

GIB = 1024 ** 3
TARGET_PEAK_ABOVE_BASELINE = 1 * GIB
TARGET_E2E_SECONDS = 120.0
STAGES = ["build", "convert", "quantize", "end_to_end"]


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _stage(name: str, work: Path, quant: str) -> dict:
    """Run one stage in this process; return wall seconds and memory figures."""
    import numpy  # noqa: F401  (baseline includes the libraries every stage loads)
    import gguf  # noqa: F401
    import llama_cpp  # noqa: F401

    from ondevice_convert import convert_checkpoint, quantize
    from ondevice_bench.fixtures.synthetic import RANDOM_1B_ALIAS, ensure_random_llama_1b_checkpoint

    import resource

    baseline = _rss_kib("VmRSS")
    ru0 = resource.getrusage(resource.RUSAGE_SELF)
    t = time.perf_counter()
    extra: dict = {}
    if name == "build":
        ckpt = ensure_random_llama_1b_checkpoint()
        extra["bytes"] = sum(p.stat().st_size for p in ckpt.glob("*.safetensors"))
        extra["path"] = str(ckpt)
    elif name == "convert":
        ckpt = ensure_random_llama_1b_checkpoint()
        r = convert_checkpoint(ckpt, work, quant=None, outtype="f16", force=True, name=RANDOM_1B_ALIAS,
                               progress=False)
        extra["bytes"] = r.sizes["F16"]
    elif name == "quantize":
        src = work / f"{RANDOM_1B_ALIAS}.F16.gguf"
        extra["bytes"] = quantize(src, work / f"{RANDOM_1B_ALIAS}.{quant}.gguf", quant, progress=False)
    elif name == "end_to_end":
        ckpt = ensure_random_llama_1b_checkpoint()
        r = convert_checkpoint(ckpt, work / "e2e", quant=quant, outtype="f16", force=True, keep_float=False,
                               name=RANDOM_1B_ALIAS, progress=False)
        extra["bytes"] = r.sizes[quant]
        extra["timings"] = {k: round(v, 2) for k, v in r.timings.items()}
    else:
        raise ValueError(f"expected a stage in {STAGES}, got {name!r}")
    wall = time.perf_counter() - t
    ru1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    peak = _rss_kib("VmHWM")
    # cpu_s: CPU seconds of all threads - less sensitive than wall time to other load on the machine
    return {"stage": name, "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "load_avg_1m": round(os.getloadavg()[0], 2), "baseline_rss_mib": round(baseline / 1024, 1),
            "peak_rss_mib": round(peak / 1024, 1), "peak_above_baseline_mib": round((peak - baseline) / 1024, 1),
            **extra}


def run(args: argparse.Namespace) -> int:
    """Run every stage in a subprocess and print a table (and JSON if --json)."""
    from ondevice.paths import assets_dir

    work = Path(getattr(args, "work", None) or assets_dir() / "convert-bench")
    work.mkdir(parents=True, exist_ok=True)
    quant = getattr(args, "quant", None) or "Q4_K_M"
    rows = []
    load_before = os.getloadavg()[0]
    if load_before > (os.cpu_count() or 1) * 0.5:
        print(f"note: load average {load_before:.1f} on {os.cpu_count()} cores - wall times will be inflated; "
              "cpu_s is the steadier figure", file=sys.stderr)
    for stage in STAGES:
        proc = subprocess.run([sys.executable, "-m", "ondevice_bench.convert_bench", "--stage", stage, "--work", str(work),
                               "--quant", quant], capture_output=True, text=True,
                              cwd=str(Path(__file__).resolve().parents[1]))
        if proc.returncode != 0:
            print(proc.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"convert bench: stage {stage} failed (exit {proc.returncode})")
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    e2e = next(r for r in rows if r["stage"] == "end_to_end")
    conv = next(r for r in rows if r["stage"] == "convert")
    summary = {
        "machine": {"cpus": os.cpu_count(), "load_avg_before": round(load_before, 2)},
        "quant": quant,
        "stages": rows,
        "hf_to_quant_wall_s": e2e["wall_s"],
        "convert_peak_above_baseline_mib": conv["peak_above_baseline_mib"],
        "targets": {
            "convert_peak_above_baseline_lt_1gib": conv["peak_above_baseline_mib"] < TARGET_PEAK_ABOVE_BASELINE / 2**20,
            "hf_to_quant_lt_120s": e2e["wall_s"] < TARGET_E2E_SECONDS,
        },
    }
    print(f"{'stage':12} {'wall s':>8} {'cpu s':>8} {'load':>5} {'baseline MiB':>13} {'peak MiB':>9} "
          f"{'peak-base MiB':>14} {'output':>10}")
    for r in rows:
        print(f"{r['stage']:12} {r['wall_s']:8.1f} {r['cpu_s']:8.1f} {r['load_avg_1m']:5.1f} "
              f"{r['baseline_rss_mib']:13.0f} {r['peak_rss_mib']:9.0f} "
              f"{r['peak_above_baseline_mib']:14.0f} {r.get('bytes', 0) / 2**20:9.0f}M")
    print(json.dumps(summary["targets"]))
    if getattr(args, "json", None):
        Path(args.json).write_text(json.dumps(summary, indent=2))
    if not getattr(args, "keep", False):
        shutil.rmtree(work, ignore_errors=True)
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quant", default="Q4_K_M", help="quantization type (default Q4_K_M)")
    p.add_argument("--json", help="write the results as JSON to this file")
    p.add_argument("--work", help="scratch directory for the GGUFs (default: under the ondevice assets cache)")
    p.add_argument("--keep", action="store_true", help="keep the GGUFs written by the benchmark")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `convert` to a benchmark CLI's subcommands."""
    p = subparsers.add_parser("convert", help="time HF -> GGUF -> Q4_K_M on the Llama-3.2-1B shape",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=run)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ondevice_bench.convert_bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.add_argument("--stage", choices=STAGES, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.stage:
        print(json.dumps(_stage(args.stage, Path(args.work), args.quant)))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
