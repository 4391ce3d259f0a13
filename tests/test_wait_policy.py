"""llama.cpp's OpenMP threads spin briefly, then sleep, unless the user chose how they wait; and that is
set before llama.cpp (and libgomp, which reads it once, when it loads) is loaded, whatever is imported
first (see ondevice/wait_policy.py for the measurements behind the default)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

PROBE = ("import os, ondevice, llama_cpp; "
         "print(os.environ.get('OMP_WAIT_POLICY', '-'), os.environ.get('GOMP_SPINCOUNT', '-'))")

pytestmark = pytest.mark.nomodel

# Run first in a child: at the first import of llama_cpp, record the wait variable and whether libgomp
# is already mapped into the process (then the variable comes too late, whatever it says).
RECORDER = r'''
import importlib.abc, os, sys
class _Watch(importlib.abc.MetaPathFinder):
    seen = None
    def find_spec(self, name, path=None, target=None):
        if name == "llama_cpp" and _Watch.seen is None:
            with open("/proc/self/maps") as f:
                gomp = "libgomp" in f.read()
            _Watch.seen = (os.environ.get("GOMP_SPINCOUNT", "-"), gomp)
            print("FIRST-LLAMA-IMPORT", *_Watch.seen, flush=True)
        return None
sys.meta_path.insert(0, _Watch())
'''


def _child_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}


@pytest.mark.parametrize("given, expected", [
    ({}, "- 1000"),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE -"),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE -"),
    ({"GOMP_SPINCOUNT": "50000"}, "- 50000"),
])
def test_a_short_spin_unless_the_user_chose(given, expected):
    env = _child_env()
    env.update(given)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected


def _modules_that_load_llama() -> list[str]:
    """Every project module that imports llama_cpp, at module level or inside a function."""
    roots = {"ondevice": REPO / "ondevice", "ondevice_convert": REPO / "convert", "ondevice_bench": REPO / "bench"}
    found = []
    for package, root in roots.items():
        for path in sorted(root.rglob("*.py")):
            if re.search(r"^\s*(import llama_cpp|from llama_cpp)", path.read_text(), re.M):
                parts = path.relative_to(root).with_suffix("").parts
                found.append(".".join((package, *parts)).removesuffix(".__init__"))
    return found


# ondevice_bench.contention loads llama_cpp first on purpose, to measure libgomp's own default; the
# quantizer's worker is a script that imports no package of ours, and llama.cpp's quantizer runs on its own
# threads, not OpenMP's.
DELIBERATE = {"ondevice_bench.contention", "ondevice_convert.quantize_worker"}
ENTRY_POINTS = ["import ondevice", "import ondevice.engine", "import ondevice.engine.llama", "import ondevice.server",
                "import ondevice.cli",
                "import runpy; sys.argv = ['ondevice', '--version']; runpy.run_module('ondevice', run_name='__main__')",
                *(f"import {m}; import llama_cpp" for m in _modules_that_load_llama() if m not in DELIBERATE)]


@pytest.mark.parametrize("entry", ENTRY_POINTS)
def test_the_wait_policy_is_set_before_llama_cpp_loads(entry):
    code = RECORDER + f"\nimport sys\n{entry}\n"
    out = subprocess.run([sys.executable, "-c", code], env=_child_env(), capture_output=True, text=True,
                         timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    first = [line.split() for line in out.stdout.splitlines() if line.startswith("FIRST-LLAMA-IMPORT")]
    assert first, f"{entry!r} never imported llama_cpp"
    _, spin, gomp_loaded = first[0]
    assert (spin, gomp_loaded) == ("1000", "False"), (
        f"{entry!r}: at llama_cpp's first import GOMP_SPINCOUNT={spin}, libgomp already loaded: {gomp_loaded}")
