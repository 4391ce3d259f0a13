"""How llama.cpp's worker threads wait: set before llama.cpp (and its OpenMP runtime) loads.

llama-cpp-python built with GCC links llama.cpp's CPU backend against libgomp, and ggml then waits at
every barrier of a graph (hundreds per llama_decode) and between llama_decode calls (while Python
picks the next token) the libgomp way: spin `GOMP_SPINCOUNT` times, then sleep. libgomp's default spins
300,000 times: alone that costs little, but next to a second busy process the spinning threads steal
the time the other needs, and both collapse (measured on 2 cores: one call 2.45 s alone, 65.8 s each
when two ran at once). Never spinning (``OMP_WAIT_POLICY=PASSIVE``) shares fairly but puts every
barrier to sleep: measured with `ondevice bench contention` (2 cores, AMD host), single-process decode
fell by 17% on the 1B shape and 30% on the stand-in. A short spin keeps both:

| wait (2 cores, AMD host)    | 1B decode alone | two at once / alone | stand-in decode alone | two at once / alone |
|-----------------------------|----------------:|--------------------:|----------------------:|--------------------:|
| libgomp default (300,000)   | 23.9 tok/s      | 4.2x                | 137 tok/s             | 4.4x                |
| GOMP_SPINCOUNT=1000         | 23.0 tok/s      | 1.9x                | 124 tok/s             | 2.3x                |
| OMP_WAIT_POLICY=PASSIVE     | 19.8 tok/s      | 1.5x                | 96 tok/s              | 1.3x                |

(3,000 spins already gave 3.0x on the stand-in, 20,000 gave 11x.) libgomp reads these variables once,
when it is loaded, so this must run before ``llama_cpp`` is imported. It lives at the package's top
(standard library only) and ``ondevice/__init__.py`` imports it before anything else, so importing any
``ondevice`` module, ``python -m ondevice`` or the console script sets it first; ``ondevice_convert`` and
``ondevice_bench`` modules that load llama.cpp import ``ondevice`` before it. A value the user set, of
either variable, is kept.
"""

from __future__ import annotations

import os

WAIT_POLICY_ENV = "OMP_WAIT_POLICY"
SPIN_COUNT_ENV = "GOMP_SPINCOUNT"
DEFAULT_SPIN_COUNT = "1000"


def set_wait_policy() -> str:
    """Give llama.cpp's OpenMP threads a short spin before they sleep, unless the user chose how they
    wait; returns the setting in force, e.g. ``GOMP_SPINCOUNT=1000``."""
    for name in (WAIT_POLICY_ENV, SPIN_COUNT_ENV):
        if name in os.environ:
            return f"{name}={os.environ[name]}"
    os.environ[SPIN_COUNT_ENV] = DEFAULT_SPIN_COUNT
    return f"{SPIN_COUNT_ENV}={DEFAULT_SPIN_COUNT}"


set_wait_policy()
