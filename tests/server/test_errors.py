"""Bad input gets a 4xx in OpenAI's error shape naming the field; the server stays up; a client that
goes away frees its place; SIGTERM stops the server cleanly; the missing extra is one line."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import openai
import pytest

from ..common import nest_objects
from .conftest import API_KEY, MODEL, REPO, Server, openai_tools

QUERY = [{"role": "user", "content": "What's the weather like in New York in fahrenheit?"}]


def raw(server, method, path, body=None, key=API_KEY, headers=None):
    """A request with http.client (bodies the openai client would refuse to send); (status, JSON)."""
    url = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    data = body if isinstance(body, (bytes, str)) or body is None else json.dumps(body)
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    conn.request(method, url.path + path, body=data, headers=hdrs)
    response = conn.getresponse()
    payload = json.loads(response.read() or b"null")
    conn.close()
    return response.status, payload


def assert_error(status, payload, want_status, param=None):
    assert status == want_status, payload
    error = payload["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert error["param"] == param, error
    return error


def health(server):
    return json.loads(urllib.request.urlopen(server.url.removesuffix("/v1") + "/health").read())


def chat(**fields):
    return dict({"model": MODEL, "messages": QUERY, "tools": openai_tools("simple")}, **fields)


@pytest.mark.parametrize("body,status,param", [
    (b"{not json", 400, None),
    (b"[1, 2]", 400, None),
    (chat(model=None), 400, "model"),
    (chat(model="gpt-4o"), 404, "model"),
    (chat(messages="hi"), 400, "messages"),
    (chat(messages=[]), 400, "messages"),
    (chat(messages=[{"role": "wizard", "content": "hi"}]), 400, "messages"),
    (chat(messages=[{"role": "user", "content": "   "}]), 400, "messages"),
    (chat(messages=QUERY + [{"role": "assistant", "content": "[]"}]), 400, "messages"),
    (chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]), 400, "messages"),
    (chat(tools={"type": "function"}), 400, "tools"),
    (chat(tools=[{"name": "f"}]), 400, "tools"),
    (chat(temperature="hot"), 400, "temperature"),
    (chat(temperature=5), 400, "temperature"),
    (chat(max_tokens=0), 400, "max_tokens"),
    (chat(max_tokens=True), 400, "max_tokens"),
    (chat(stream="yes"), 400, "stream"),
    (chat(parallel_tool_calls="no"), 400, "parallel_tool_calls"),
    (chat(n=2), 400, "n"),
    (chat(response_format={"type": "xml"}), 400, "response_format"),
    (chat(response_format={"type": "json_schema"}), 400, "response_format"),
    (chat(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": "object"}}), 400,
     "response_format"),
    (chat(response_format={"type": "json_schema", "json_schema": {"name": "r", "schema": {"propertyNames": {"maxLength": 2}}}}), 400,
     "response_format"),
    (chat(tool_choice="always"), 400, "tool_choice"),
    (chat(tool_choice={"type": "function", "function": {"name": "nope"}}), 400, "tool_choice"),
    (chat(tool_choice={"type": "custom", "custom": {"name": "x"}}), 400, "tool_choice"),
    (chat(tools=None, tool_choice="required"), 400, "tool_choice"),
])
def test_bad_input_is_a_4xx_naming_the_field(server, body, status, param):
    got, payload = raw(server, "POST", "/chat/completions", body)
    assert_error(got, payload, status, param)


def test_refused_tool_schema_names_tool_and_keyword(server):
    # strict: true refuses what the grammar cannot enforce (without it the keyword is relaxed: test_relaxed.py)
    tools = [{"type": "function", "function": {"name": "pick", "strict": True, "parameters": {
        "type": "object", "properties": {"xs": {"type": "array", "uniqueItems": True}}}}}]
    status, payload = raw(server, "POST", "/chat/completions", chat(tools=tools))
    error = assert_error(status, payload, 400, "tools")
    assert "'pick'" in error["message"] and "uniqueItems" in error["message"]


def test_prompt_longer_than_the_context(server):
    long_query = "weather " * 5000
    status, payload = raw(server, "POST", "/chat/completions",
                          chat(messages=[{"role": "user", "content": long_query}]))
    error = assert_error(status, payload, 400, "messages")
    assert error["code"] == "context_length_exceeded"
    # The same through streaming: still a 400, not a broken stream.
    status, payload = raw(server, "POST", "/chat/completions",
                          chat(messages=[{"role": "user", "content": long_query}], stream=True))
    assert_error(status, payload, 400, "messages")


def test_body_over_the_limit(server):
    body = b'{"model": "x", "pad": "' + b"a" * (9 << 20) + b'"}'  # over the default max_body_bytes (8 MiB)
    error = assert_error(*raw(server, "POST", "/chat/completions", body), 413)
    assert "max_body_bytes" in error["message"]


def test_unknown_route_and_method(server):
    assert_error(*raw(server, "GET", "/nothing"), 404)
    assert_error(*raw(server, "GET", "/chat/completions"), 405)


def test_api_key(server):
    for key in (None, "wrong"):
        error = assert_error(*raw(server, "POST", "/chat/completions", chat(), key=key), 401)
        assert error["code"] == "invalid_api_key"
        assert_error(*raw(server, "GET", "/models", key=key), 401)
    with pytest.raises(openai.AuthenticationError):
        server.client(api_key="wrong").models.list()
    assert server.client().models.list().data[0].id == MODEL


def test_bad_requests_leave_the_server_up(server, client):
    for _ in range(3):
        raw(server, "POST", "/chat/completions", b"\xff\xfe garbage")
    # "required": the stand-in (no tool training) copies a description's example into its call, which
    # the grounding check rightly refuses where a call is optional
    r = client.chat.completions.create(model=MODEL, messages=QUERY, tools=openai_tools("simple"), max_tokens=64,
                                       tool_choice="required")
    assert r.choices[0].message.tool_calls
    assert health(server)["status"] == "ok"


# --- hostile requests (issue 27): a 400 naming what is wrong, never a 500 -----------------------------
def deep_list(depth: int) -> str:
    return "[" * depth + "]" * depth


def tool(name: str = "get_weather", description: str = "The weather", parameters: dict | None = None) -> dict:
    return {"type": "function", "function": {"name": name, "description": description,
                                             "parameters": parameters or {"type": "object", "properties": {}}}}


def answered(arguments: str) -> list:
    """A conversation whose assistant turn called get_weather with `arguments` (a JSON text)."""
    return QUERY + [{"role": "assistant", "content": None, "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "72"}]


@pytest.mark.parametrize("path, body, param, words", [
    # the three found by hand
    ("/chat/completions", f'{{"model": "{MODEL}", "messages": {deep_list(10_000)}}}', None,
     ["the request body nests too deeply to read"]),
    ("/chat/completions", chat(tools=[tool("deep", parameters=nest_objects(200))]), "tools",
     ["tool 'deep'", "nests 403 levels deep, the limit is 64 (setting max_schema_depth"]),
    ("/chat/completions", chat(messages=[{"role": "user", "content": "\ud800"}]), "messages",
     ["messages[0].content holds text that is not valid UTF-8"]),
    # their siblings
    ("/chat/completions", f'{{"model": "{MODEL}", "messages": {deep_list(600)}}}', "messages",
     ["the request body nests 601 levels deep (at messages[0][0]", "the limit is 512"]),
    ("/chat/completions", chat(tools=[tool("\ud800")]), "tools", ["tools[0].function.name holds text"]),
    ("/chat/completions", chat(tools=[tool(description="\udfff")]), "tools",
     ["tools[0].function.description holds text"]),
    ("/chat/completions", chat(tools=[tool(parameters={"type": "object", "properties": {"\ud800": {}}})]), "tools",
     ["tools[0].function.parameters.properties holds text"]),
    ("/chat/completions", chat(messages=answered('{"city": "\\ud800"}')), "messages",
     ["messages[1].tool_calls[0].function.arguments: city holds text that is not valid UTF-8"]),
    ("/chat/completions", chat(messages=answered(deep_list(10_000))), "messages",
     ["messages[1].tool_calls[0].function.arguments nests too deeply to read"]),
    ("/chat/completions", chat(messages=answered('{"a": ' * 100 + "1" + "}" * 100)), "messages",
     ["messages[1].tool_calls[0].function.arguments nests 100 levels deep, the limit is 64"]),
    ("/chat/completions", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "r", "schema": nest_objects(200)}}), "response_format",
     ["response format 'r': its schema nests 401 levels deep, the limit is 64 (setting max_schema_depth"]),
    ("/chat/completions", chat(response_format={"type": "json_schema", "json_schema": {
        "name": "r", "schema": {"type": "string", "description": "\ud800"}}}), "response_format",
     ["response_format.json_schema.schema.description holds text"]),
    ("/chat/completions", f'{{"model": "{MODEL}", "temperature": NaN}}', None,
     ["the request body is not valid JSON: NaN is not a JSON number"]),
    ("/chat/completions", f'{{"model": "{MODEL}", "seed": {"1" * 5000}}}', None,
     ["the request body is not valid JSON"]),
    ("/responses", {"model": MODEL, "input": "\ud800"}, "input", ["input holds text that is not valid UTF-8"]),
    ("/responses", f'{{"model": "{MODEL}", "input": {deep_list(10_000)}}}', None,
     ["the request body nests too deeply to read"]),
])
def test_hostile_request_is_a_400_naming_what_is_wrong(server, path, body, param, words):
    before = health(server)
    error = assert_error(*raw(server, "POST", path, body), 400, param)
    for word in words:
        assert word in error["message"], error
    assert "internal" not in error["message"] and error["type"] == "invalid_request_error"
    after = health(server)
    assert after["status"] == "ok" and after["failed"] == before["failed"]  # refused before the model saw it


def test_the_server_answers_after_hostile_requests(server, client):
    for body in (f'{{"messages": {deep_list(10_000)}}}', chat(tools=[tool("deep", parameters=nest_objects(200))]),
                 chat(messages=[{"role": "user", "content": "\ud800"}])):
        assert raw(server, "POST", "/chat/completions", body)[0] == 400
    r = client.chat.completions.create(model=MODEL, messages=QUERY, tools=openai_tools("simple"), max_tokens=64)
    assert r.choices[0].finish_reason in ("tool_calls", "stop")


LONG_TOOLS = [{"type": "function", "function": {"name": "write", "parameters": {
    "type": "object", "properties": {"lines": {"type": "array", "minItems": 40,
                                               "items": {"type": "string", "minLength": 30}}},
    "required": ["lines"]}}}]


def wait_for(predicate, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def test_a_client_that_leaves_frees_its_place(server, client):
    """A stream dropped once it started (a call is only streamed once complete, and the grammar makes
    this one at least 1,200 characters long), and a plain request whose client times out, are both
    stopped at their next token."""
    before = health(server)["cancelled"]
    body = chat(tools=LONG_TOOLS, tool_choice="required", max_tokens=4000, stream=True)
    url = urllib.parse.urlparse(server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    conn.request("POST", url.path + "/chat/completions", json.dumps(body),
                 {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"})
    response = conn.getresponse()
    assert response.status == 200
    seen = b""
    while b'"role": "assistant"' not in seen:  # the stream has started: the request is decoding
        seen += response.read1(4096)
    conn.sock.shutdown(2)
    conn.close()
    wait_for(lambda: health(server)["cancelled"] == before + 1, "the dropped stream is stopped")

    impatient = server.client(timeout=2.0)
    with pytest.raises(openai.APITimeoutError):
        impatient.chat.completions.create(model=MODEL, messages=QUERY, tools=LONG_TOOLS, tool_choice="required",
                                          max_tokens=4000)
    wait_for(lambda: health(server)["cancelled"] == before + 2, "the abandoned request is stopped")
    wait_for(lambda: not health(server)["running"], "the worker is idle")
    r = client.chat.completions.create(model=MODEL, messages=QUERY, tools=openai_tools("simple"), max_tokens=64)
    assert r.choices[0].finish_reason in ("tool_calls", "stop")


def test_sigterm_and_sigint_stop_cleanly(ondevice_home):
    for sig in (signal.SIGTERM, signal.SIGINT):
        srv = Server()
        assert srv.client().models.list().data[0].id == MODEL  # no --api-key: open
        code, stderr = srv.stop(sig)
        assert code == 0, stderr
        assert "ondevice: stopped" in stderr and "Traceback" not in stderr


@pytest.mark.nomodel
def test_missing_extra_is_one_line():
    code = ("import sys; sys.modules['starlette'] = None; from ondevice.cli import main; "
            "sys.exit(main(['serve', '--port', '0']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120,
                       env=dict(os.environ))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        "ondevice: error: ondevice serve needs starlette (the serve extra): pip install 'ondevice[serve]'"]


@pytest.mark.nomodel
def test_bad_parallel_is_one_line():
    r = subprocess.run([sys.executable, "-m", "ondevice", "serve", "--port", "0", "--parallel", "0"],
                       capture_output=True, text=True, cwd=REPO, timeout=120, env=dict(os.environ))
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == ["ondevice: error: --parallel: expected an integer from 1 to 64, got 0"]
