"""`ondevice doctor` on this machine (all well: exit 0), and its findings when something is wrong: a
corrupt model, a crash of the tiny call (a child process that crashes on purpose), a build for
instructions the CPU lacks."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ondevice import doctor


def _doctor(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ondevice", "doctor", *args], capture_output=True, text=True,
                          timeout=600, env=env or dict(os.environ))


def test_doctor_on_this_machine_is_all_well(ondevice_home):
    r = _doctor()
    assert r.returncode == 0, r.stdout + r.stderr
    names = [line.split(":", 1)[0] for line in r.stdout.splitlines()]
    for name in ("cpu", "amx", "cpu backend", "llama.cpp", "gpu offload", "weights", "model smollm2-135m-instruct",
                 "cache", "tiny call"):
        assert name in names, r.stdout
    backend = next(line for line in r.stdout.splitlines() if line.startswith("cpu backend:"))
    assert "libggml-cpu" in backend and " in /" in backend, backend  # the library llama.cpp's CPU backend came from
    system = next(line for line in r.stdout.splitlines() if line.startswith("llama.cpp:"))
    assert "CPU : " in system, system  # llama.cpp's own summary, from the backend it loaded
    assert "matches its manifest" in r.stdout and "tiny call: ok in a child process" in r.stdout
    weights = next(line for line in r.stdout.splitlines() if line.startswith("weights:"))
    assert "AMX" not in weights.split("used:")[1].split("; avoided")[0]  # never used by default
    assert r.stdout.rstrip().endswith("ok: no problem found")


@pytest.mark.nomodel
def test_a_model_that_fails_is_one_problem_line_and_exit_1(tmp_path, ondevice_home):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\x03\x00\x00\x00" + b"\x00" * 64)
    r = _doctor("--model", str(bad))
    assert r.returncode == 1, r.stdout + r.stderr
    problems = [line for line in r.stdout.splitlines() if line.startswith("problem:")]
    assert len(problems) == 1 and "a tiny call on bad.gguf failed" in problems[0], r.stdout


@pytest.mark.nomodel
def test_a_crash_in_the_child_is_a_finding_not_our_death():
    result = doctor.run_child("import ctypes; ctypes.string_at(0)")
    assert result.signal_name == "SIGSEGV" and result.output is None
    ok = doctor.run_child("import json; print(json.dumps({'a': 1}))")
    assert ok.output == {"a": 1} and ok.signal_name is None


@pytest.mark.nomodel
def test_a_build_for_missing_instructions_is_a_problem(monkeypatch):
    monkeypatch.setattr(doctor.hardware, "system_info", lambda: "CPU : AVX = 1 | AVX2 = 1 | AVX512 = 1 | AMX_INT8 = 1 |")
    report = doctor.Report()
    doctor.check_build(report, {"avx", "avx2"})
    assert len(report.problems) == 1
    assert "(AVX512, AMX_INT8)" in report.problems[0] and "scripts/setup --portable" in report.problems[0]
    assert doctor.build_features("CPU : AVX = 1 | AVX2 = 0 | REPACK = 1 |") == ["AVX", "REPACK"]
