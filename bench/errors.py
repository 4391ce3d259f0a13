"""Errors of the benchmarks (OndeviceError subclasses: the CLI prints them as one line, exit 2)."""

from __future__ import annotations

from ondevice.errors import OndeviceError


class BenchDependencyError(OndeviceError, RuntimeError):
    """A bench-only dependency is missing."""


class BfclUnavailable(BenchDependencyError):
    """bfcl-eval is missing or not the pinned version."""
