"""A format another package provides: declared in the ``ondevice.formats`` entry-point group, found
by a fresh process with no other file changed, offered by ``--tool-format``, and decoding as the
built-in format it derives from (here the native Hermes layout under another name, on Qwen)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
QUERY = "What's the weather like in New York in fahrenheit?"

PLUGIN = '''
from ondevice.formats.native import NativeFormat


class PluginHermes(NativeFormat):
    name = "hermes-plugin"
    summary = "a test package's format: the native layout under another name"


class NotAFormat:
    name = "broken-plugin"
'''


def _install_plugin(root: Path) -> Path:
    """A package on disk as pip leaves it: the module and its dist-info with the entry points."""
    (root / "ondevice_test_format.py").write_text(PLUGIN)
    info = root / "ondevice_test_format-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: ondevice-test-format\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ondevice.formats]\nhermes-plugin = ondevice_test_format:PluginHermes\n"
                                           "broken-plugin = ondevice_test_format:NotAFormat\n")
    return root


def _run(args: list[str], plugin_dir: Path, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(plugin_dir), HF_HUB_OFFLINE="1", ONDEVICE_HOME=str(home))
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=600)


@pytest.mark.nomodel
def test_a_plugin_format_is_registered_and_a_broken_one_named(tmp_path, ondevice_home):
    plugin = _install_plugin(tmp_path)
    done = _run(["-c", "from ondevice.formats import format_names; print(format_names())"], plugin, ondevice_home)
    assert done.returncode == 0, done.stderr
    assert "'hermes-plugin'" in done.stdout and "broken-plugin" not in done.stdout
    assert "tool format plugin 'broken-plugin'" in done.stderr and "expected a ToolFormat" in done.stderr
    helped = _run(["-m", "ondevice", "call", "--help"], plugin, ondevice_home)
    assert "hermes-plugin (a test package's format" in " ".join(helped.stdout.split()), helped.stdout


def test_a_plugin_format_decodes_as_the_built_in_one(tmp_path, ondevice_home):
    plugin = _install_plugin(tmp_path)
    answers = {}
    for name in ("native", "hermes-plugin"):
        done = _run(["-m", "ondevice", "call", QUERY, "--tools", "examples/simple/tools.json", "--model",
                     "qwen2.5-coder-0.5b-instruct", "--tool-format", name, "--json", "--threads", "2"],
                    plugin, ondevice_home)
        assert done.returncode == 0, done.stderr[-2000:]
        answer = json.loads(done.stdout)
        answers[name] = (answer["calls"], answer["text"])  # timings differ (the second reuses the prefix cache)
    assert answers["hermes-plugin"] == answers["native"]
    calls, _ = answers["native"]
    assert calls and calls[0]["name"] == "get_weather"
