"""Fixtures of the benchmark tests: skip cleanly when the bench extras are not installed."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def bfcl():
    """bench.bfcl with bfcl-eval (pinned) installed; skipped with the install command otherwise."""
    from ondevice_bench import bfcl as module

    try:
        module.data_dir()
    except module.BfclUnavailable as exc:
        pytest.skip(str(exc))
    return module
