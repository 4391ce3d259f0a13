"""Real MCP servers' toolsets (bench/fixtures/mcp/, collected by `ondevice bench mcp collect` from each
server's own tools/list): every one is accepted whole by ondevice, none refused for one keyword.
Model-free; the fixtures are committed, so no server or network is needed, except by the last test,
which starts the test folder's own server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from ondevice import Settings
from ondevice.api import check_tools
from ondevice.schema.tools import relaxations
from ondevice_bench import mcp_servers
from ondevice_bench.mcp_servers import FIXTURES_DIR, SERVERS

pytestmark = pytest.mark.nomodel

RECORDS = {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES_DIR.glob("*.json"))}
COLLECTED = {name: r for name, r in RECORDS.items() if r.get("tools") is not None}
OWN_SERVER = Path(__file__).resolve().parents[1] / "run" / "mcp_server.py"


def test_every_pinned_server_is_recorded_with_its_version():
    assert set(RECORDS) == {s.name for s in SERVERS}
    for server in SERVERS:
        record = RECORDS[server.name]
        assert (record["server"], record["package"], record["version"]) == (server.name, server.package, server.version)
        assert record.get("tools") is not None or record.get("error"), f"{server.name}: neither tools nor a reason"
    assert len(COLLECTED) >= 15, f"only {sorted(COLLECTED)} were collected"


@pytest.mark.parametrize("name", sorted(COLLECTED))
def test_a_collected_toolset_is_accepted_whole(name):
    tools = COLLECTED[name]["tools"]
    normalized, grammar = check_tools(tools, Settings())  # normalized and compiled as a call does; raises if refused
    assert [t.name for t in normalized] == [t["name"] for t in tools]
    for relaxation in relaxations(normalized):  # what is relaxed is named: tool, place, keyword
        assert relaxation.tool in {t["name"] for t in tools} and relaxation.path.startswith("parameters")
    server = next(s for s in SERVERS if s.name == name)
    assert server.tool in {t.name for t in normalized}, f"{name}: the query's tool {server.tool!r} is not listed"


def test_the_benchmarks_check_names_what_is_relaxed():
    # Firecrawl's domain lists bound each hostname's length beside a pattern llguidance cannot intersect
    # with the bounds: the bounds are relaxed, the pattern enforced; its propertyNames are exact rewrites.
    check = mcp_servers.check_toolset(COLLECTED["firecrawl"]["tools"])
    assert check["refused_whole"] is None and check["accepted"] == check["tools"]
    assert {(r["tool"], r["keyword"]) for r in check["relaxed"]} == {("firecrawl_search", "minLength"),
                                                                      ("firecrawl_search", "maxLength")}
    # Playwright's record type (propertyNames: {"type": "string"}) once refused its 25 tools whole
    assert mcp_servers.check_toolset(COLLECTED["playwright"]["tools"])["relaxed"] == []


def test_plain_json_rpc_reads_the_tools_as_the_sdk_does(tmp_path):
    # The fallback for a server whose list the SDK refuses (GitLab's) gives the same tool dicts.
    argv, env = [sys.executable, str(OWN_SERVER)], {}
    with open(tmp_path / "stderr.log", "w") as errlog:
        raw = mcp_servers.read_tools_raw(argv, env, tmp_path, errlog, timeout=60)
        sdk = mcp_servers.read_tools(argv, env, tmp_path, errlog, timeout=60)
    assert raw == sdk and {t["name"] for t in raw} == {"get_stock_price", "fail_always", "inventory"}
