"""A native crash is reported in one line naming the likely cause and `ondevice doctor` (crash.py):
a child process crashes on purpose, as llama.cpp would, and its stderr is read."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

pytestmark = pytest.mark.nomodel

CHILD = """
import ctypes, os, signal, sys
from ondevice import crash
assert crash.install()
if sys.argv[1] == "segv":
    ctypes.string_at(0)  # a read of address 0, as a bad pointer in llama.cpp
os.kill(os.getpid(), getattr(signal, sys.argv[1].upper()))
"""


def _crash(kind: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, ONDEVICE_HOME=str(tmp_path))
    # stderr is read to its end: the watcher holds it too, so this also waits for the watcher's line
    return subprocess.run([sys.executable, "-c", CHILD, kind], capture_output=True, text=True, env=env, timeout=60)


@pytest.mark.parametrize("kind, signum, what, cause", [
    ("segv", signal.SIGSEGV, "Segmentation fault", "llama.cpp"),
    ("sigill", signal.SIGILL, "Illegal instruction", "scripts/setup --portable"),
    ("sigabrt", signal.SIGABRT, "Aborted", "llama.cpp stopped the process"),
])
def test_a_native_crash_is_one_line_naming_the_cause_and_doctor(kind, signum, what, cause, tmp_path):
    r = _crash(kind, tmp_path)
    assert r.returncode == -signum  # the signal's own status: a shell sees 139 for a segfault
    lines = [line for line in r.stderr.splitlines() if line.startswith("ondevice:")]
    assert len(lines) == 1, r.stderr
    line = lines[0]
    assert line.startswith(f"ondevice: crashed in native code ({what}, in ")
    assert cause in line and "run `ondevice doctor`" in line
    report = tmp_path / "last-crash.txt"
    assert f"(report: {report})" in line
    assert "Fatal Python error" in report.read_text()


def test_a_clean_exit_prints_nothing(tmp_path):
    code = "from ondevice import crash; assert crash.install(); print('ok')"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ONDEVICE_HOME=str(tmp_path)))
    assert (r.returncode, r.stdout, r.stderr) == (0, "ok\n", "")
    assert not (tmp_path / "last-crash.txt").exists()


def test_the_cli_watches_the_commands_that_run_llama_cpp():
    from ondevice.cli import WATCHED_COMMANDS, build_parser

    commands = set(build_parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    assert {"call", "chat", "serve", "bench"} <= WATCHED_COMMANDS <= commands


def test_ondevice_call_reports_a_crash_in_its_command_in_one_line(tmp_path):
    # `ondevice call` as the console script runs it (main() reading sys.argv), its body replaced by a crash
    code = ("import ctypes, sys; from ondevice import cli; from ondevice.cli import call; "
            "call.run = lambda args: ctypes.string_at(0); sys.argv = ['ondevice', 'call', 'hi']; sys.exit(cli.main())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, ONDEVICE_HOME=str(tmp_path)))
    assert r.returncode == -signal.SIGSEGV
    assert [line for line in r.stderr.splitlines() if line.startswith("ondevice:")] == [
        line for line in r.stderr.splitlines() if "crashed in native code (Segmentation fault" in line and "ondevice doctor" in line]
    assert "crashed in native code" in r.stderr
