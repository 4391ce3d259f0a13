"""Bounded resources: each input limit refuses with a clear error naming its setting (issue 14)."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from ondevice import Settings
from ondevice.errors import ContextOverflowError, InputLimitError, ToolSchemaError
from ondevice.schema.limits import json_depth, parse_json_body
from ondevice.settings import SettingsError

from ..cli.test_cli import ondevice


def tool(name: str, properties: dict | None = None) -> dict:
    return {"name": name, "description": "d", "parameters": {"type": "object", "properties": properties or {}}}


def nested(depth: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


@pytest.mark.nomodel
@pytest.mark.parametrize("name, value", [
    ("max_tools", 0), ("max_tools_bytes", 1), ("max_schema_depth", 1), ("max_body_bytes", 0),
    ("grammar_compile_fuel", 0), ("grammar_step_fuel", -1), ("grammar_max_size", 0)])
def test_limit_settings_are_validated(name, value):
    with pytest.raises(SettingsError, match=f"setting {name}: expected an integer"):
        Settings(**{name: value})


def test_tool_count(caller):
    tools = [tool(f"t{i}") for i in range(4)]
    with pytest.raises(InputLimitError, match=r"at most 3 tools \(setting max_tools\), got 4"):
        caller.call("hi", tools, settings=caller.settings.with_(max_tools=3))
    assert caller.call("hi", tools[:3], settings=caller.settings.with_(max_tools=3, max_tokens=4)).calls is not None


def test_tools_bytes(caller):
    tools = [tool("big", {"x": {"type": "string", "description": "y" * 5000}})]
    with pytest.raises(InputLimitError, match=r"the tools are 5\d\d\d bytes as JSON, the limit is 4096 \(setting max_tools_bytes\)"):
        caller.call("hi", tools, settings=caller.settings.with_(max_tools_bytes=4096))


def test_schema_depth(caller):
    with pytest.raises(InputLimitError, match=r"tool 'deep': its definition nests 2\d\d levels deep, the limit is 64"):
        caller.call("hi", [{"name": "deep", "parameters": nested(100)}])
    # Far deeper than Python's recursion limit: refused, not a RecursionError.
    with pytest.raises(InputLimitError, match="max_schema_depth"):
        caller.call("hi", [{"name": "deeper", "parameters": nested(50_000)}])
    assert json_depth(nested(3)) == 7  # {"properties": {"a": ...}} is two levels per step, + the leaf schema


def test_query_and_history_are_bounded_by_the_context(caller):
    ceiling = caller.model.n_ctx * caller.max_token_bytes
    with pytest.raises(ContextOverflowError, match="more than a context of 4096 tokens can hold"):
        caller.call("x" * (ceiling + 1), [])  # refused before rendering or tokenizing
    history = [{"role": "system", "content": "s"}, {"role": "user", "content": "y" * ceiling}]
    with pytest.raises(ContextOverflowError, match="more than a context"):
        caller.call("hi", [], history)
    with pytest.raises(ContextOverflowError, match="tokens but the context holds 4096"):
        caller.call("word " * 5000, [])  # fits the byte bound, not the context


@pytest.mark.nomodel
def test_json_body():
    small = Settings(max_body_bytes=100)
    assert parse_json_body(b'{"tools": []}', small) == {"tools": []}
    with pytest.raises(InputLimitError, match=r"the JSON body is 101 bytes, the limit is 100 \(setting max_body_bytes\)"):
        parse_json_body(b" " * 99 + b"[]", small)
    with pytest.raises(InputLimitError, match="nests too deeply"):
        parse_json_body("[" * 200_000 + "]" * 200_000, Settings())


def test_cli_bounds_what_it_reads(tmp_path, ondevice_home):
    big = tmp_path / "big.json"
    big.write_text(json.dumps([tool("t", {"x": {"type": "string", "description": "z" * (9 << 20)}})]))
    r = ondevice("call", "hi", "--tools", str(big), home=ondevice_home)
    assert r.returncode == 2 and "max_body_bytes" in r.stderr and r.stderr.startswith("ondevice: error: ")
    r = ondevice("call", "hi", "--tools", "-", stdin=big.read_text(), home=ondevice_home)
    assert r.returncode == 2 and "stdin holds more than 8388608 bytes" in r.stderr
    many = tmp_path / "many.json"
    many.write_text(json.dumps([tool(f"t{i}") for i in range(300)]))
    r = ondevice("call", "hi", "--tools", str(many), home=ondevice_home)
    assert r.returncode == 2 and "at most 256 tools (setting max_tools), got 300" in r.stderr
    r = ondevice("chat", stdin="x" * (9 << 20) + "\n", home=ondevice_home)
    assert r.returncode == 2 and "a query line is longer than 8388608 bytes (setting max_body_bytes)" in r.stderr


def test_grammar_too_big_to_build_names_the_tool(caller):
    tools = [tool("small"), tool("large", {f"p{i}": {"type": "string", "enum": [f"v{j}" for j in range(8)]}
                                           for i in range(12)})]
    with pytest.raises(ToolSchemaError, match=r"tool 'large': the grammar compiler refused .*grammar_max_size"):
        caller.call("hi", tools, settings=caller.settings.with_(grammar_max_size=100))
    with pytest.raises(ToolSchemaError, match=r"tool 'large'.*grammar_compile_fuel"):
        caller.call("hi", tools[1:], settings=caller.settings.with_(grammar_compile_fuel=500))
    assert caller.call("hi", tools, settings=caller.settings.with_(max_tokens=4)).calls is not None  # defaults: fine


def test_grammar_too_slow_to_mask_names_the_tool(caller):
    evil = {"name": "evil", "parameters": {"type": "object", "required": ["x"], "properties": {
        "x": {"type": "string", "pattern": "^(a|b)*a(a|b){12}$"}}}}
    with pytest.raises(ToolSchemaError, match=r"tool 'evil': computing its grammar's next-token mask went over the limit.*grammar_step_fuel=50"):
        caller.call("Call evil", [evil], settings=caller.settings.with_(grammar_step_fuel=50, max_tokens=40))


class _Counting(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # pragma: no cover - reached only if a $ref were fetched
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"type": "string"}')

    def log_message(self, *args) -> None:
        pass


def test_remote_refs_are_refused_and_never_fetched(caller):
    server = http.server.HTTPServer(("127.0.0.1", 0), _Counting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/schema.json"
    try:
        for params in [
            {"type": "object", "properties": {"x": {"$ref": url}}},
            {"type": "object", "$defs": {"y": {"$ref": url + "#/y"}}, "properties": {"x": {"$ref": "#/$defs/y"}}},
            {"type": "object", "$id": url, "properties": {"x": {"$ref": "schema.json"}}},
        ]:
            with pytest.raises(ToolSchemaError, match=r"tool 'r'.*unsupported.*\$ref.*only local refs"):
                caller.call("hi", [{"name": "r", "parameters": params}])
    finally:
        server.shutdown()
    assert _Counting.hits == 0
