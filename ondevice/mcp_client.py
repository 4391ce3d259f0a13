"""MCP servers as tools: stdio servers from an ``mcpServers`` config, through the official `mcp` SDK.

    with MCPServers.from_config("mcp.json") as servers:
        servers.tools()                                  # ondevice tool dicts, one per server tool
        servers.call("get_current_time", {"timezone": "Europe/Paris"})   # ToolOutput(text, is_error)

The config is the layout Claude Desktop and LM Studio use::

    {"mcpServers": {"time": {"command": "mcp-server-time", "args": [], "env": {}}}}

The SDK is async; each server's session lives in one task on a private event loop in a background
thread (anyio's scopes must close in the task that opened them), and the synchronous methods here hand
it coroutines. `close` ends the sessions, which stops the server processes. `mcp` is imported only
when a server starts: without the `mcp` extra the runtime works, and starting one names the install.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO

from .errors import MCPError

INSTALL_HINT = "pip install 'ondevice[mcp]'"
CONFIG_EXAMPLE = '{"mcpServers": {"NAME": {"command": "...", "args": ["..."], "env": {}}}}'


@dataclass(frozen=True)
class ServerSpec:
    """One stdio server of the config: how to start it."""

    name: str
    command: str
    args: tuple[str, ...] = ()
    env: Optional[dict[str, str]] = None
    cwd: Optional[str] = None


@dataclass(frozen=True)
class ToolOutput:
    """What a tool call returned: the text the model reads, and whether the server flagged an error."""

    text: str
    is_error: bool = False


def read_config(config: str | Path | dict[str, Any]) -> list[ServerSpec]:
    """The servers of an ``mcpServers`` config (a JSON file's path, or the parsed dict); MCPError saying
    what is wrong otherwise."""
    where = "the MCP config"
    if not isinstance(config, dict):
        where = str(config)
        try:
            config = json.loads(Path(config).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise MCPError(f"MCP config not found: {where} (pass a JSON file like {CONFIG_EXAMPLE})") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise MCPError(f"cannot read the MCP config {where}: {exc}") from None
        except json.JSONDecodeError as exc:
            raise MCPError(f"{where} is not JSON ({exc.msg} at line {exc.lineno}): expected {CONFIG_EXAMPLE}") from None
    servers = config.get("mcpServers") if isinstance(config, dict) else None
    if not isinstance(servers, dict) or not servers:
        raise MCPError(f"{where}: expected an object with a non-empty \"mcpServers\" object: {CONFIG_EXAMPLE}")
    specs = []
    for name, entry in servers.items():
        at = f"{where}: mcpServers.{name}"
        if not isinstance(entry, dict):
            raise MCPError(f"{at}: expected an object with \"command\", got {type(entry).__name__}")
        if "command" not in entry and ("url" in entry or "type" in entry):
            raise MCPError(f"{at}: only stdio servers (\"command\", \"args\") are supported, not remote ones (\"url\")")
        command, args, env, cwd = entry.get("command"), entry.get("args", []), entry.get("env"), entry.get("cwd")
        if not isinstance(command, str) or not command.strip():
            raise MCPError(f"{at}: \"command\" must be the server's executable, a non-empty string")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise MCPError(f"{at}: \"args\" must be a list of strings")
        if env is not None and (not isinstance(env, dict)
                                or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
            raise MCPError(f"{at}: \"env\" must map names to strings")
        if cwd is not None and not isinstance(cwd, str):
            raise MCPError(f"{at}: \"cwd\" must be a string")
        specs.append(ServerSpec(str(name), command, tuple(args), env, cwd))
    return specs


def tool_output(result: Any) -> ToolOutput:
    """A ``tools/call`` result as text: ``structuredContent`` as compact JSON when the server sent it
    (the spec has it repeated in a text block, often indented: more tokens for the same value), else
    the text blocks joined (other blocks named by their type); ``isError`` kept."""
    # by_alias: the wire's camelCase names, whatever the SDK version calls its fields.
    data = result.model_dump(by_alias=True, mode="json", exclude_none=True)
    structured = data.get("structuredContent")
    text = ""
    if structured is not None:
        text = json.dumps(structured, ensure_ascii=False)
    else:
        parts = []
        for block in data.get("content") or []:
            kind = block.get("type")
            if kind == "text":
                parts.append(block.get("text", ""))
            elif kind == "resource" and isinstance(block.get("resource"), dict) and "text" in block["resource"]:
                parts.append(block["resource"]["text"])
            else:
                parts.append(f"[{kind} content: {block.get('mimeType') or block.get('uri') or 'not shown'}]")
        text = "\n".join(parts)
    return ToolOutput(text, bool(data.get("isError")))


class _Server:
    """One running server: its session, and the event that ends the task holding it open."""

    def __init__(self, spec: ServerSpec):
        self.spec = spec
        self.session: Any = None
        self.tools: list[dict[str, Any]] = []
        self.stop: Optional[asyncio.Event] = None
        self.task: Optional[asyncio.Task[None]] = None


class MCPServers:
    """Stdio MCP servers, started, listed and called synchronously. A context manager; `close` stops them.

    `tools()` holds each server's tools as ondevice tool dicts (name, description, the ``inputSchema``
    as parameters). A name two servers share is prefixed ``<server>_`` in both; `call` takes the name
    as listed."""

    def __init__(self, specs: list[ServerSpec], *, start_timeout: float = 60.0, call_timeout: float = 120.0,
                 errlog: Optional[TextIO] = None):
        self.specs = list(specs)
        self.start_timeout = start_timeout
        self.call_timeout = call_timeout
        self._errlog = errlog
        self._servers: list[_Server] = []
        self._routes: dict[str, tuple[_Server, str]] = {}  # listed name -> (server, the server's own name)
        self._tools: list[dict[str, Any]] = []
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._thread: Optional[threading.Thread] = None
        self._closed = False

    @classmethod
    def from_config(cls, config: str | Path | dict[str, Any], **kwargs: Any) -> "MCPServers":
        """Start every server of an ``mcpServers`` config (a JSON file or a dict) and list its tools."""
        servers = cls(read_config(config), **kwargs)
        servers.start()
        return servers

    # --- life cycle ----------------------------------------------------------------------------------
    def start(self) -> "MCPServers":
        """Start the servers and list their tools; on any failure, stop those already started."""
        sdk = _import_sdk()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ondevice-mcp", daemon=True)
        self._thread.start()
        try:
            for spec in self.specs:
                server = _Server(spec)
                self._servers.append(server)
                ready = self._submit(self._open(server, sdk))
                try:
                    ready.result(self.start_timeout)
                except concurrent.futures.TimeoutError:
                    raise MCPError(f"MCP server {spec.name!r} ({spec.command}) did not answer within "
                                   f"{self.start_timeout:g} s") from None
        except BaseException:
            self.close()
            raise
        self._name_tools()
        return self

    async def _open(self, server: _Server, sdk: Any) -> None:
        """Start one server in a task of its own that holds the session open until `close`."""
        opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        server.stop = asyncio.Event()
        server.task = asyncio.ensure_future(self._hold(server, sdk, opened))
        await opened

    async def _hold(self, server: _Server, sdk: Any, opened: "asyncio.Future[None]") -> None:
        spec = server.spec
        params = sdk.StdioServerParameters(command=spec.command, args=list(spec.args), env=spec.env, cwd=spec.cwd)
        try:
            async with sdk.stdio_client(params, errlog=self._errlog_file()) as streams:
                read, write = streams[0], streams[1]
                async with sdk.ClientSession(read, write) as session:
                    await session.initialize()
                    server.session = session
                    server.tools = await _list_tools(session, sdk)
                    opened.set_result(None)
                    assert server.stop is not None
                    await server.stop.wait()
        except BaseException as exc:  # noqa: BLE001 -- reported to the thread that waits for the start
            if not opened.done():
                opened.set_exception(_start_error(spec, exc))
            elif not isinstance(exc, (asyncio.CancelledError, Exception)):
                raise

    def _errlog_file(self) -> TextIO:
        # The SDK hands this to the child process as its stderr, which needs a real file descriptor.
        for stream in (self._errlog, sys.stderr):
            try:
                if stream is not None:
                    stream.fileno()
                    return stream
            except (AttributeError, OSError, ValueError):
                continue
        return open(os.devnull, "w")  # noqa: SIM115 -- lives as long as the process

    def close(self) -> None:
        """End the sessions (the SDK stops each server process) and the background loop; idempotent."""
        if self._closed or self._loop is None:
            self._closed = True
            return
        self._closed = True
        loop = self._loop

        async def stop_all() -> None:
            for server in self._servers:
                if server.stop is not None:
                    server.stop.set()
            tasks = [s.task for s in self._servers if s.task is not None]
            if tasks:
                await asyncio.wait(tasks, timeout=10)

        try:
            asyncio.run_coroutine_threadsafe(stop_all(), loop).result(15)
        except Exception:  # noqa: BLE001 -- closing goes on: the loop stops whatever a server did
            pass
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)
        if not loop.is_running():
            loop.close()

    def __enter__(self) -> "MCPServers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    # --- tools ---------------------------------------------------------------------------------------
    def tools(self) -> list[dict[str, Any]]:
        """Every server's tools as ondevice tool dicts (``name``, ``description``, ``parameters``)."""
        return [dict(t) for t in self._tools]

    def server_of(self, name: str) -> str:
        """The name (in the config) of the server that offers the tool listed as `name`."""
        return self._routes[name][0].spec.name

    def call(self, name: str, arguments: dict[str, Any]) -> ToolOutput:
        """Run one tool (``tools/call``) and wait for its result; MCPError when the server fails to answer."""
        if self._closed:
            raise MCPError("these MCP servers are closed")
        route = self._routes.get(name)
        if route is None:
            raise MCPError(f"no MCP server offers a tool named {name!r}")
        server, own_name = route
        future = self._submit(server.session.call_tool(own_name, arguments))
        try:
            result = future.result(self.call_timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise MCPError(f"MCP tool {name!r} ({server.spec.name}) did not answer within {self.call_timeout:g} s") from None
        return tool_output(result)

    def _name_tools(self) -> None:
        counts: dict[str, int] = {}
        for server in self._servers:
            for tool in server.tools:
                counts[tool["name"]] = counts.get(tool["name"], 0) + 1
        for server in self._servers:
            prefix = re.sub(r"[^A-Za-z0-9_-]", "_", server.spec.name)
            for tool in server.tools:
                own = tool["name"]
                listed = own if counts[own] == 1 else f"{prefix}_{own}"
                if listed in self._routes:
                    raise MCPError(f"two MCP tools are both named {listed!r}: rename a server in the config")
                self._routes[listed] = (server, own)
                self._tools.append({**tool, "name": listed})

    def _submit(self, coro: Any) -> "concurrent.futures.Future[Any]":
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop)


def _import_sdk() -> Any:
    try:
        import mcp
        from mcp.client.stdio import stdio_client  # noqa: F401 -- a partial install fails here, not later
    except ImportError as exc:
        raise MCPError(f"MCP servers need the `mcp` package ({exc}): {INSTALL_HINT}") from None
    return mcp


async def _list_tools(session: Any, sdk: Any) -> list[dict[str, Any]]:
    """Every page of ``tools/list``, as tool dicts."""
    tools: list[dict[str, Any]] = []
    cursor: Optional[str] = None
    for _ in range(1000):  # a server that hands back cursors forever is cut off
        if cursor is None:
            page = await session.list_tools()
        else:
            try:  # the SDK's newer spelling, then its older one
                page = await session.list_tools(params=sdk.types.PaginatedRequestParams(cursor=cursor))
            except TypeError:
                page = await session.list_tools(cursor=cursor)
        data = page.model_dump(by_alias=True, mode="json", exclude_none=True)
        for tool in data.get("tools", []):
            tools.append({"name": tool["name"], "description": tool.get("description") or "",
                          "parameters": tool.get("inputSchema") or {"type": "object", "properties": {}}})
        cursor = data.get("nextCursor")
        if not cursor:
            break
    return tools


def _start_error(spec: ServerSpec, exc: BaseException) -> MCPError:
    # anyio wraps a task's failure in an exception group: the first leaf says what happened.
    while isinstance(getattr(exc, "exceptions", None), (list, tuple)) and exc.exceptions:  # type: ignore[attr-defined]
        exc = exc.exceptions[0]  # type: ignore[attr-defined]
    if isinstance(exc, MCPError):
        return exc
    if isinstance(exc, (FileNotFoundError, PermissionError)):
        return MCPError(f"MCP server {spec.name!r}: cannot run {spec.command!r} ({exc.strerror or exc}): check "
                        "\"command\" in the config (a full path, or a program on PATH)")
    return MCPError(f"MCP server {spec.name!r} ({spec.command} {' '.join(spec.args)}) failed to start: "
                    f"{type(exc).__name__}: {exc}")
