"""MCP servers over stdio, real ones: the test folder's own server (mcp_server.py, written with the
SDK) and mcp-server-time from PyPI (the test extra). Model-free; no network."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ondevice import MCPError, MCPServers
from ondevice.mcp_client import read_config

pytestmark = pytest.mark.nomodel

SERVER = Path(__file__).with_name("mcp_server.py")


def own_server() -> dict:
    return {"command": sys.executable, "args": [str(SERVER)]}


def time_server() -> dict:
    command = shutil.which("mcp-server-time", path=str(Path(sys.executable).parent))
    if command is None:
        pytest.skip("mcp-server-time is not installed (pip install -e '.[test]')")
    return {"command": command, "args": ["--local-timezone", "UTC"]}


def test_list_call_error_and_structured_results(tmp_path):
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"shop": own_server()}}))
    with MCPServers.from_config(config) as servers:
        tools = {t["name"]: t for t in servers.tools()}
        assert set(tools) == {"get_stock_price", "fail_always", "inventory"}
        assert tools["get_stock_price"]["parameters"]["required"] == ["symbol"]
        assert "ticker symbol" in tools["get_stock_price"]["description"]
        # structuredContent, when sent, is what the model reads (the SDK wraps a plain value as "result")
        assert servers.call("get_stock_price", {"symbol": "acme"}).text == '{"result": "ACME trades at 123.25 USD"}'
        failed = servers.call("fail_always", {"reason": "Sunday"})
        assert failed.is_error and "the warehouse is closed: Sunday" in failed.text
        assert json.loads(servers.call("inventory", {"item": "bolts"}).text) == {"item": "bolts", "count": 7}
        with pytest.raises(MCPError, match="no MCP server offers a tool named 'nope'"):
            servers.call("nope", {})
    with pytest.raises(MCPError, match="closed"):
        servers.call("get_stock_price", {"symbol": "ACME"})


def test_pypi_time_server_and_names_shared_by_two_servers():
    config = {"mcpServers": {"time": time_server(), "shop": own_server(), "shop2": own_server()}}
    with MCPServers.from_config(config) as servers:
        names = [t["name"] for t in servers.tools()]
        # the time server's names are its own; the two shops' collide, so both get their server's prefix
        assert names[:2] == ["get_current_time", "convert_time"]
        assert {"shop_get_stock_price", "shop2_get_stock_price", "shop_inventory"} <= set(names)
        assert servers.server_of("shop2_get_stock_price") == "shop2"
        now = json.loads(servers.call("get_current_time", {"timezone": "Asia/Tokyo"}).text)
        assert now["timezone"] == "Asia/Tokyo" and now["datetime"].endswith("+09:00")
        bad = servers.call("get_current_time", {"timezone": "Nowhere/Bad"})
        assert bad.is_error and "Nowhere/Bad" in bad.text
        assert "GLOBEX trades at 88.5 USD" in servers.call("shop2_get_stock_price", {"symbol": "GLOBEX"}).text


def test_server_processes_end_on_close():
    servers = MCPServers.from_config({"mcpServers": {"shop": own_server()}})
    pids = _children()
    assert pids, "the server process should be running"
    servers.close()
    servers.close()  # idempotent
    assert not (_children() & pids)


def _children() -> set[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(__import__("os").getpid())], capture_output=True, text=True)
    return {int(p) for p in out.stdout.split()} - {out.args and 0}


@pytest.mark.parametrize("config, words", [
    ({}, 'non-empty "mcpServers"'),
    ({"mcpServers": {"a": {"url": "http://x"}}}, "only stdio servers"),
    ({"mcpServers": {"a": {"command": ""}}}, '"command" must be'),
    ({"mcpServers": {"a": {"command": "x", "args": "y"}}}, '"args" must be a list'),
    ({"mcpServers": {"a": {"command": "x", "env": {"K": 1}}}}, '"env" must map'),
])
def test_bad_configs_say_what_to_fix(config, words):
    with pytest.raises(MCPError, match=words):
        read_config(config)


def test_bad_files_and_commands(tmp_path):
    with pytest.raises(MCPError, match="MCP config not found"):
        read_config(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(MCPError, match="is not JSON"):
        read_config(tmp_path / "bad.json")
    with pytest.raises(MCPError, match="cannot run 'no-such-mcp-server'"):
        MCPServers.from_config({"mcpServers": {"a": {"command": "no-such-mcp-server"}}})
    with pytest.raises(MCPError, match="'quits' .*failed to start"):
        MCPServers.from_config({"mcpServers": {"quits": {"command": sys.executable, "args": ["-c", "pass"]}}},
                               start_timeout=30)


def test_runtime_works_without_the_mcp_extra():
    code = ("import sys; sys.modules['mcp'] = None\n"  # as if the extra were not installed
            "import ondevice\n"
            "from ondevice import MCPServers, MCPError\n"
            "try:\n"
            "    MCPServers.from_config({'mcpServers': {'a': {'command': 'x'}}})\n"
            "except MCPError as e:\n"
            "    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[2])
    assert r.returncode == 0, r.stderr
    assert "pip install 'ondevice[mcp]'" in r.stdout
    r = subprocess.run([sys.executable, "-c", "import sys, ondevice; print('mcp' in sys.modules)"],
                       capture_output=True, text=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    assert r.stdout.strip() == "False"  # imported only when a server starts
