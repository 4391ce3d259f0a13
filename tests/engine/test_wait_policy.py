"""llama.cpp's OpenMP threads spin briefly, then sleep, unless the user chose how they wait (set before
llama.cpp loads; see ondevice/wait_policy.py for the measurements behind the default)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = ("import os, ondevice, llama_cpp; "
         "print(os.environ.get('OMP_WAIT_POLICY', '-'), os.environ.get('GOMP_SPINCOUNT', '-'))")


@pytest.mark.parametrize("given, expected", [
    ({}, "- 1000"),
    ({"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE -"),
    ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE -"),
    ({"GOMP_SPINCOUNT": "50000"}, "- 50000"),
])
def test_a_short_spin_unless_the_user_chose(given, expected):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(given)
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == expected
