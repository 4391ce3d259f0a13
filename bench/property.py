"""`ondevice bench property`: the property-based tests at their full count of cases.

The default test run keeps them short (20 cases); before a release they run with many more, which
takes minutes on 2 cores. They live in the source checkout's tests/ (a wheel does not ship them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

from . import BENCH_DIR
from .errors import BenchDependencyError

REPO = BENCH_DIR.parent
PROPERTY_TESTS = ("tests/grammar/test_property.py", "tests/cli/test_cli_fuzz.py")


def run(args: argparse.Namespace) -> int:
    """Run the property tests with `args.examples` cases each; pytest's exit status."""
    missing = [t for t in PROPERTY_TESTS if not (REPO / t).is_file()]
    if missing:
        raise BenchDependencyError(f"the property tests are not here ({', '.join(missing)} under {REPO}): "
                                   "run this from a source checkout of ondevice")
    env = dict(os.environ, ONDEVICE_PROPERTY_EXAMPLES=str(args.examples))
    start = time.perf_counter()
    status = subprocess.call([sys.executable, "-m", "pytest", "-q", "-W", "ignore::DeprecationWarning",
                              "-p", "no:cacheprovider", *PROPERTY_TESTS], cwd=REPO, env=env)
    print(f"property tests, {args.examples} cases each: exit {status} in {time.perf_counter() - start:.0f} s",
          file=sys.stderr)
    return status
