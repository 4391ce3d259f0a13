"""A native crash (llama.cpp segfaults, an illegal instruction, an abort) never looks like ours.

A signal like SIGSEGV kills the process before any Python code can run, so the report is written by
faulthandler (C code, safe in a signal handler) into a pipe whose other end a small watcher process
holds (ondevice/_crash_watch.py). When the `ondevice` process ends the pipe closes; after a crash the
watcher prints one line on the same stderr: what happened, where, the likely cause on this machine, and
`ondevice doctor`. The exit status stays the signal's (139 for a segfault), as the shell expects.
Used by the CLI for every command that loads a model (call, chat, serve, bench: serve's model worker
runs in that process).
"""

from __future__ import annotations

import faulthandler
import os
import subprocess
import sys
from pathlib import Path
from typing import Optional

from .paths import home

_WATCHER = Path(__file__).with_name("_crash_watch.py")
_PIPE: Optional[object] = None  # the write end, kept open for the life of the process
_PROC: Optional[subprocess.Popen] = None


def hints() -> tuple[str, str, str]:
    """The likely cause of a segfault, of an illegal instruction, and of anything else, on this machine."""
    from .engine import hardware

    if hardware.has_amx() and hardware.amx_allowed():
        segv = (f"likely llama.cpp's AMX path (llama.cpp #20824), which {hardware.AMX_ENV}=1 turned back on: "
                f"unset {hardware.AMX_ENV}")
    else:
        segv = ("likely a defect in llama.cpp or in its build for this machine, not in your input: try --no-repack, "
                "or rebuild llama-cpp-python here (bash scripts/setup)")
    ill = ("likely this llama-cpp-python build uses CPU instructions this machine lacks (built with -march=native "
           "elsewhere): rebuild it here (bash scripts/setup) or install a portable build (scripts/setup --portable)")
    other = "likely llama.cpp stopped the process (an assertion in llama.cpp or its build, not your input)"
    return segv, ill, other


def report_path() -> Path:
    """Where the watcher keeps the last crash's full faulthandler report."""
    return home() / "last-crash.txt"


def install() -> bool:
    """Report a native crash of this process in one line (see the module doc). Once per process;
    False when it could not be set up (the process then runs as before, unwatched)."""
    global _PIPE, _PROC
    if _PIPE is not None:
        return True
    try:
        read_fd, write_fd = os.pipe()
        try:
            _PROC = subprocess.Popen(
                [sys.executable, "-I", "-S", str(_WATCHER), str(read_fd), str(report_path()), *hints()],
                pass_fds=(read_fd,), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=False,
            )
        finally:
            os.close(read_fd)
        _PIPE = os.fdopen(write_fd, "w")
        faulthandler.enable(file=_PIPE, all_threads=True)
    except OSError:
        return False
    return True
