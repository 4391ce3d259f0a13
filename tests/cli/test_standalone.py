"""The runtime stands alone: with the export step and the benchmarks unimportable, `ondevice --help`,
`ondevice models` and a real `ondevice call` work, and importing the runtime pulls no heavy package.

Each run is a subprocess whose `sitecustomize` puts a meta-path finder first that refuses the extras'
packages (under their installed names and the repository's folder names), as on an edge install
without `ondevice[convert]` or `ondevice[bench]`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

from ondevice import ToolCall, normalize_tools, validate_calls
from ondevice.cli import ENTRY_POINT_GROUP

from ..common import EXAMPLES, PINNED_DATE, load_example

EXTRAS = ("ondevice_convert", "ondevice_bench", "convert", "bench")
HEAVY = ("gguf", "transformers", "torch", "matplotlib")

REFUSER = '''
import sys

REFUSED = {refused!r}


class Refuse:
    """A meta-path finder that makes the listed top-level packages unimportable."""

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in REFUSED:
            raise ModuleNotFoundError(f"No module named {{name!r}} (refused by the test)", name=name)
        return None


sys.meta_path.insert(0, Refuse())
'''


@pytest.fixture()
def run_without(tmp_path: Path, ondevice_home: Path):
    """run(refused, *argv): a Python subprocess in which the `refused` top-level packages cannot be imported."""

    def run(refused: tuple[str, ...], *argv: str) -> subprocess.CompletedProcess:
        site = tmp_path / "site"
        site.mkdir(exist_ok=True)
        (site / "sitecustomize.py").write_text(REFUSER.format(refused=set(refused)))
        env = dict(os.environ, HF_HUB_OFFLINE="1", ONDEVICE_HOME=str(ondevice_home))
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(site), env.get("PYTHONPATH", "")) if p)
        return subprocess.run([sys.executable, *argv], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=600)

    return run


@pytest.mark.nomodel
def test_the_refuser_refuses(run_without):
    r = run_without(EXTRAS, "-c", "import ondevice_convert")
    assert r.returncode != 0 and "refused by the test" in r.stderr


def test_help_models_and_a_real_call_without_the_extras(run_without):
    r = run_without(EXTRAS, "-m", "ondevice", "--help")
    assert r.returncode == 0, r.stderr
    for command in ("call", "chat", "models"):
        assert f"    {command} " in r.stdout

    r = run_without(EXTRAS, "-m", "ondevice", "models")
    assert r.returncode == 0, r.stderr
    assert "smollm2-135m-instruct" in r.stdout and "llama-3.2-1b-apigen-fc" in r.stdout

    tools, case = load_example("simple")
    r = run_without(EXTRAS, "-m", "ondevice", "call", case["queries"][0], "--tools",
                    str(EXAMPLES / "simple" / "tools.json"), "--date-string", PINNED_DATE)
    assert r.returncode == 0, r.stderr
    calls = [ToolCall(c["name"], c["arguments"]) for c in json.loads(r.stdout)]
    assert calls and calls[0].name == "get_weather"
    assert validate_calls(calls, normalize_tools(tools)) == []


@pytest.mark.nomodel
def test_importing_the_runtime_pulls_no_heavy_package(run_without):
    code = ("import sys, json; import ondevice, ondevice.api, ondevice.cli; ondevice.cli.build_parser(); "
            f"print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r})))")
    for refused in (EXTRAS, ()):  # without the extras, and with them installed (their CLIs load too)
        r = run_without(refused, "-c", code)
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout) == [], f"refusing {refused}: importing the runtime imported {r.stdout}"


@pytest.mark.nomodel
def test_a_missing_extra_is_one_line_naming_the_pip_command(run_without):
    registered = {ep.name for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}
    assert {"convert", "pull", "bench"} <= registered, (
        f"entry points of {ENTRY_POINT_GROUP} not installed ({sorted(registered)}): reinstall with pip install -e .")
    cases = [(EXTRAS, ["convert", "./checkpoint", "--quant", "Q4_K_M"], "ondevice[convert]"),
             (EXTRAS, ["bench", "speed", "--help"], "ondevice[bench]"),
             (EXTRAS, ["pull", "llama-3.2-1b-apigen-fc"], "ondevice[convert]"),
             (("gguf",), ["convert", "./checkpoint"], "ondevice[convert]")]  # the package, not its dependency
    for refused, argv, extra in cases:
        r = run_without(refused, "-m", "ondevice", *argv)
        assert r.returncode == 2, (argv, r.stdout, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("ondevice: error: "), (argv, r.stderr)
        assert f"pip install '{extra}'" in lines[0], (argv, r.stderr)
        assert r.stdout == ""
