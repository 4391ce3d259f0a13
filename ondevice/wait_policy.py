"""How llama.cpp's worker threads wait: set before llama.cpp (and its OpenMP runtime) loads.

llama-cpp-python built with GCC links llama.cpp's CPU backend against libgomp. By default libgomp's
idle threads spin (busy-wait) between parallel regions, i.e. between every llama_decode, while
Python samples the next token. Alone that costs little; with a second busy process on the same
cores the spinning threads steal the time the other process needs, and both collapse (measured on
2 cores: one constrained call 2.45 s alone, 65.8 s each when two ran at once). A passive wait policy
makes idle threads sleep instead: two processes then each take about twice as long, fair sharing.

libgomp reads ``OMP_WAIT_POLICY`` once, when it is loaded, so this must run before ``llama_cpp`` is
imported (``ondevice/__init__.py`` imports this module first). A value the user set is kept.
"""

from __future__ import annotations

import os

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
DEFAULT_WAIT_POLICY = "PASSIVE"


def set_wait_policy() -> str:
    """Make llama.cpp's OpenMP threads sleep when idle unless the user chose otherwise; returns the policy."""
    return os.environ.setdefault(WAIT_POLICY_ENV, DEFAULT_WAIT_POLICY)


set_wait_policy()
