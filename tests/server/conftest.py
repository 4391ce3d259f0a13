"""A real `ondevice serve` on a free loopback port, started as a subprocess and driven over HTTP."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional

import pytest

from ondevice.models.assets import standin_gguf_path
from ondevice.schema.tools import normalize_tools

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
PINNED_DATE = "26 Jul 2024"
API_KEY = "test-key"
MODEL = "smollm2-135m-instruct"
QWEN = "qwen2.5-coder-0.5b-instruct"

openai = pytest.importorskip("openai")


class Server:
    """`ondevice serve --port 0 ...` as a subprocess; `url` once it printed its ready line."""

    def __init__(self, *extra: str, env: Optional[dict[str, str]] = None, startup_s: float = 180):
        args = [sys.executable, "-m", "ondevice", "serve", "--port", "0", "--model", MODEL, "--threads", "1",
                "--date-string", PINNED_DATE, *extra]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                                     env=dict(os.environ, **(env or {})))
        lines: "queue.Queue[str]" = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in self.proc.stdout], daemon=True).start()
        deadline = time.monotonic() + startup_s
        while True:  # the ready line, or the server's own error as soon as it exits
            try:
                self.ready_line = lines.get(timeout=0.2).rstrip("\n")
                break
            except queue.Empty:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    code, err = self.stop()
                    raise AssertionError(f"the server printed no ready line (exit {code}); stderr: {err}")
        self.url = self.ready_line.rsplit(" on ", 1)[-1]

    def client(self, api_key: str = API_KEY, **kwargs: Any) -> "openai.OpenAI":
        return openai.OpenAI(base_url=self.url, api_key=api_key, max_retries=0, timeout=kwargs.pop("timeout", 300),
                             **kwargs)

    def anthropic(self, api_key: Optional[str] = API_KEY, **kwargs: Any) -> Any:
        """The official anthropic client on this server (its base URL is the root: it adds /v1/messages)."""
        anthropic = pytest.importorskip("anthropic", reason="pip install anthropic")
        return anthropic.Anthropic(base_url=self.url.removesuffix("/v1"), api_key=api_key, max_retries=0,
                                   timeout=kwargs.pop("timeout", 300), **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"the server did not stop within {timeout} s of signal {sig}")
        return self.proc.returncode, self.proc.stderr.read()


@pytest.fixture(scope="session")
def server(ondevice_home: Path) -> Server:
    standin_gguf_path()  # fails here, with its own message, when the stand-in is missing
    srv = Server("--api-key", API_KEY)
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def qwen_server(ondevice_home: Path) -> Server:
    """One Qwen2.5-Coder server (its native format, --parallel 4 by default) shared by every server test."""
    srv = Server("--model", QWEN, "--api-key", API_KEY)
    yield srv
    code, stderr = srv.stop()
    assert code == 0, stderr


@pytest.fixture(scope="session")
def client(server: Server) -> "openai.OpenAI":
    return server.client()


def openai_tools(example: str) -> list[dict[str, Any]]:
    """An example's tools in OpenAI's format."""
    tools = json.loads((EXAMPLES / example / "tools.json").read_text())
    return [t if t.get("type") == "function" else {"type": "function", "function": t} for t in tools]


def anthropic_tools(example: str) -> list[dict[str, Any]]:
    """An example's tools in Anthropic's layout (name, description, input_schema)."""
    return [{**{k: v for k, v in t["function"].items() if k != "parameters"}, "input_schema": t["function"]["parameters"]}
            for t in openai_tools(example)]


def example_query(example: str) -> str:
    return json.loads((EXAMPLES / example / "case.json").read_text())["queries"][0]


def calls_of(message: Any) -> list[tuple[str, str]]:
    return [(c.function.name, c.function.arguments) for c in (message.tool_calls or [])]


def check_valid(calls: list[tuple[str, str]], tools: list[dict[str, Any]]) -> None:
    """Every call names one of `tools` and its arguments (a JSON string) are valid for it."""
    import jsonschema

    by_name = {t.name: t for t in normalize_tools(tools)}
    for name, arguments in calls:
        assert name in by_name, f"call of unknown tool {name!r}"
        jsonschema.validate(json.loads(arguments), by_name[name].parameters)
