"""Every `ondevice bench X` reaches its module: the modules load lazily (a missing bench-only package
never breaks `ondevice --help`), so a wrong module name would show only when a user runs X."""

from __future__ import annotations

import argparse
import importlib

import pytest

from ondevice_bench import cli

pytestmark = pytest.mark.nomodel


def bench_commands() -> dict[str, argparse.ArgumentParser]:
    top = argparse.ArgumentParser()
    cli.register(top.add_subparsers())
    bench = next(a for a in top._subparsers._group_actions[0].choices.values())
    return dict(bench._subparsers._group_actions[0].choices)


@pytest.mark.parametrize("name", sorted(bench_commands()))
def test_every_bench_command_reaches_its_module(name):
    func = bench_commands()[name].get_default("func")
    targets = getattr(func, "targets", None)
    if targets is None:  # registered with its function already imported
        assert func.__module__.startswith("ondevice_bench."), (name, func.__module__)
        return
    for module, function in targets:
        # relative to ondevice_bench: "bench.X" imports only in a checkout, never once installed
        assert module.startswith("."), f"bench {name}: expected a module relative to ondevice_bench, got {module!r}"
        assert callable(getattr(importlib.import_module(module, cli.__package__), function)), (name, module)
