"""`ondevice chat --mcp` and `ondevice call --mcp`, run as a user runs them (a subprocess) against real MCP
servers over stdio; the consent prompt."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ondevice.cli.run_tools import confirm_with
from ondevice.formats.blocks import ToolCall

from ..common import PINNED_DATE, QWEN_ALIAS, REPO
from .test_mcp_client import own_server, time_server


def ondevice(*args: str, stdin: str, home: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", ONDEVICE_HOME=str(home))
    # start_new_session: no controlling terminal, as under cron or a pipe from another program
    return subprocess.run([sys.executable, "-m", "ondevice", *args], input=stdin, capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600, start_new_session=True)


def write_config(tmp_path: Path, servers: dict) -> str:
    path = tmp_path / "mcp.json"
    path.write_text(json.dumps({"mcpServers": servers}))
    return str(path)


def test_chat_runs_an_mcp_tool_to_a_final_answer(ondevice_home, tmp_path):
    config = write_config(tmp_path, {"time": time_server()})
    r = ondevice("chat", "--mcp", config, "--yes", "--model", QWEN_ALIAS, "--max-tokens", "40", "--max-turns", "3",
                 "--date-string", PINNED_DATE, "--no-prefix-cache", "--no-repack", stdin="What time is it in Tokyo?\n",
                 home=ondevice_home)
    assert r.returncode == 0, r.stderr
    assert 'ondevice: call get_current_time({"timezone": "Asia/Tokyo"})' in r.stderr
    assert 'ondevice: get_current_time returned: {"timezone": "Asia/Tokyo", "datetime": "' in r.stderr
    assert r.stdout.strip()  # the model's final answer


@pytest.mark.nomodel
@pytest.mark.parametrize("command", ["chat", "call"])
def test_no_terminal_and_no_yes_is_refused_at_once(ondevice_home, tmp_path, command):
    config = write_config(tmp_path, {"shop": own_server()})
    query = ["What is the price of ACME?"] if command == "call" else []
    r = ondevice(command, *query, "--mcp", config, stdin="What is the price of ACME?\n", home=ondevice_home)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "ondevice: error: --mcp asks before each tool runs, but there is no terminal to ask on: pass --yes to run "
        "the calls without asking"]
    assert r.stdout == ""


@pytest.mark.nomodel
def test_bad_config_fails_before_the_model_loads(ondevice_home, tmp_path):
    bad = tmp_path / "mcp.json"
    bad.write_text('{"servers": {}}')
    r = ondevice("call", "Hi", "--mcp", str(bad), "--yes", stdin="", home=ondevice_home)
    assert r.returncode == 2 and 'expected an object with a non-empty "mcpServers" object' in r.stderr


@pytest.mark.nomodel
@pytest.mark.parametrize("command", ["chat", "call"])
def test_relaxed_keywords_of_mcp_tools_are_named_before_the_model_loads(ondevice_home, tmp_path, command):
    # The server's tag_item has a key schema the grammar relaxes: one warning line names it, as
    # `--tools` does, once the servers are listed and before the model loads (here it does not exist).
    server = own_server()
    config = write_config(tmp_path, {"shop": {**server, "args": [*server["args"], "--relaxed-tool"]}})
    query = ["Tag the bolts"] if command == "call" else []
    r = ondevice(command, *query, "--mcp", config, "--yes", "--model", str(tmp_path / "missing.gguf"),
                 stdin="Tag the bolts\n", home=ondevice_home)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "ondevice: warning: the grammar does not enforce these keywords; each call is checked against them after "
        "decoding (mark a tool strict: true to refuse them instead): tag_item:parameters.properties.tags:propertyNames",
        f"ondevice: error: model file not found: {tmp_path / 'missing.gguf'}"]


class Terminal:
    """A terminal's two sides: what the user types, and what was shown."""

    def __init__(self, typed: str):
        self.typed, self.shown = io.StringIO(typed), io.StringIO()

    def write(self, text: str) -> int:
        return self.shown.write(text)

    def flush(self) -> None:
        pass

    def readline(self) -> str:
        return self.typed.readline()


@pytest.mark.nomodel
def test_consent_prompt_answers():
    call = ToolCall("get_stock_price", {"symbol": "ACME"})
    for answer, allowed in (("y\n", True), ("yes\n", True), ("n\n", False), ("\n", False), ("", False)):
        terminal = Terminal(answer)
        assert confirm_with(terminal)(call) is allowed
        assert terminal.shown.getvalue() == "ondevice: run get_stock_price? [y/N] "
    assert confirm_with(None)(call) is True  # --yes


def test_call_asks_on_the_terminal_and_no_declines(ondevice_home, tmp_path):
    # The child gets a pseudo-terminal as its controlling terminal (stdin stays a pipe with the query),
    # and the user's "n" is typed ahead into it.
    import fcntl
    import pty
    import select
    import termios

    config = write_config(tmp_path, {"shop": own_server()})
    master, slave = pty.openpty()

    def controlling_terminal() -> None:
        os.setsid()
        fcntl.ioctl(slave, termios.TIOCSCTTY, 0)

    env = dict(os.environ, HF_HUB_OFFLINE="1", ONDEVICE_HOME=str(ondevice_home))
    proc = subprocess.Popen(
        [sys.executable, "-m", "ondevice", "call", "What is the price of the ACME stock?", "--mcp", config, "--json",
         "--model", "smollm2-135m-instruct", "--no-call", "list", "--max-turns", "1", "--max-tokens", "40",
         "--date-string", PINNED_DATE, "--no-prefix-cache"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, cwd=REPO, preexec_fn=controlling_terminal, pass_fds=(slave,))
    os.close(slave)
    try:
        os.write(master, b"n\n")
        out, err = proc.communicate("", timeout=300)
        shown = b""
        while select.select([master], [], [], 0.5)[0]:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed with the child
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(master)
    assert proc.returncode == 0, err
    name = err.split("ondevice: call ")[1].split("(")[0]
    assert f"ondevice: run {name}? [y/N] ".encode() in shown
    assert f"ondevice: {name} failed: Error: declined: the user did not allow this call" in err
    assert "stopped after 1 turns" in err
    run = json.loads(out)
    assert run["stopped_by"] == "max_turns" and run["turns"] == 1 and run["text"] == ""
    assert run["steps"][0]["call"]["name"] == name and run["steps"][0]["error"].startswith("declined")
