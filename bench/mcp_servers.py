"""`ondevice bench mcp`: real MCP servers' toolsets, whole, through ondevice.

Two steps:

- ``collect``: each pinned server of `SERVERS` is installed into the cache
  (``<ondevice home>/assets/mcp-servers/``: npm packages with ``--ignore-scripts``, PyPI ones in a
  virtual environment of their own), started over stdio with no network (``unshare -rn`` where the
  kernel allows it) in a sandbox temp directory, with dummy API keys where a server needs one to
  start, and its ``tools/list`` is read through `ondevice.mcp_client.MCPServers` (the path ``--mcp``
  takes). The tools, as ondevice passes them to the model, are written to
  ``bench/fixtures/mcp/<server>.json`` (committed) with the package and version. A server that does
  not start offline is recorded with the reason, and collection goes on.
- ``run``: for each collected toolset, model-free, the whole list goes through ondevice's own check
  (``check_tools``: normalization and the compiled grammar): tools, tools accepted, and each relaxed
  keyword (tool, path, keyword); none may be refused. Then, unless ``--no-model``, one query per
  server (`SERVERS`) is answered with the whole toolset passed to ``ToolCaller.call``: the calls
  made, each validated with ``jsonschema`` against the tool's schema as the server sent it, the time,
  the prompt tokens and what was relaxed. Results go to ``bench/results/mcp-servers.json``; the
  Markdown tables are printed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from . import BENCH_DIR

FIXTURES_DIR = BENCH_DIR / "fixtures" / "mcp"
RESULT_NAME = "mcp-servers.json"
SANDBOX = "/sandbox"  # how the sandbox directory is written in the committed tool lists
N_CTX = 32768  # Notion's 24 tools take about 22k prompt tokens


@dataclass(frozen=True)
class Server:
    """One pinned MCP server: where it comes from, how it starts, and the query one of its tools serves.

    ``args`` and ``env`` values may hold ``{sandbox}``, the temp directory the server runs in.
    ``env`` holds dummy keys for the servers that refuse to start without one (no call is ever sent
    to them). ``tool`` is the tool that serves ``query`` (what a right answer calls)."""

    name: str
    registry: str  # "npm" or "pypi"
    package: str
    version: str
    bin: str  # the executable the package installs
    query: str
    tool: str
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    git_repo: bool = False  # the sandbox is made a git repository first

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}" if self.registry == "npm" else f"{self.package}=={self.version}"


# The newest version each registry offered on 2026-12-08.
SERVERS: tuple[Server, ...] = (
    Server("filesystem", "npm", "@modelcontextprotocol/server-filesystem", "2026.8.31", "mcp-server-filesystem",
           "Show me the contents of the file /sandbox/notes/todo.txt.", "read_text_file", args=("{sandbox}",)),
    Server("everything", "npm", "@modelcontextprotocol/server-everything", "2026.8.31", "mcp-server-everything",
           "Add the numbers 17 and 25.", "get-sum", args=("stdio",)),
    Server("memory", "npm", "@modelcontextprotocol/server-memory", "2026.8.31", "mcp-server-memory",
           "Remember this: Alice is a person who works at Acme Corp as an engineer.", "create_entities",
           env={"MEMORY_FILE_PATH": "{sandbox}/memory.jsonl"}),
    Server("github", "npm", "@modelcontextprotocol/server-github", "2025.4.8", "mcp-server-github",
           "Search GitHub for repositories about llama.cpp Python bindings.", "search_repositories",
           env={"GITHUB_PERSONAL_ACCESS_TOKEN": "ghp_dummy"}),
    Server("gitlab", "npm", "@modelcontextprotocol/server-gitlab", "2025.4.25", "mcp-server-gitlab",
           "Create an issue titled 'Login page fails' in the GitLab project mygroup/webapp.", "create_issue",
           env={"GITLAB_PERSONAL_ACCESS_TOKEN": "glpat-dummy", "GITLAB_API_URL": "https://gitlab.invalid/api/v4"}),
    Server("google-maps", "npm", "@modelcontextprotocol/server-google-maps", "0.6.2", "mcp-server-google-maps",
           "What are the coordinates of the Eiffel Tower in Paris?", "maps_geocode",
           env={"GOOGLE_MAPS_API_KEY": "dummy"}),
    Server("brave-search", "npm", "@modelcontextprotocol/server-brave-search", "0.6.2", "mcp-server-brave-search",
           "Search the web for the release date of Python 3.14.", "brave_web_search",
           env={"BRAVE_API_KEY": "dummy"}),
    Server("postgres", "npm", "@modelcontextprotocol/server-postgres", "0.6.2", "mcp-server-postgres",
           "How many rows does the users table have? Run a SQL query to count them.", "query",
           args=("postgresql://127.0.0.1:9/none",)),
    Server("sequential-thinking", "npm", "@modelcontextprotocol/server-sequential-thinking", "2026.8.31",
           "mcp-server-sequential-thinking", "Think step by step about how to plan a three-day trip to Rome.",
           "sequentialthinking"),
    Server("puppeteer", "npm", "@modelcontextprotocol/server-puppeteer", "2025.5.12", "mcp-server-puppeteer",
           "Open https://example.com in the browser.", "puppeteer_navigate"),
    Server("slack", "npm", "@modelcontextprotocol/server-slack", "2025.4.25", "mcp-server-slack",
           "Post the message 'Deploy finished' to the Slack channel C0123456789.", "slack_post_message",
           env={"SLACK_BOT_TOKEN": "xoxb-dummy", "SLACK_TEAM_ID": "T00000000"}),
    Server("playwright", "npm", "@playwright/mcp", "0.0.86", "playwright-mcp",
           "Open https://example.com in the browser.", "browser_navigate"),
    Server("firecrawl", "npm", "firecrawl-mcp", "3.26.0", "firecrawl-mcp",
           "Scrape the page https://example.com as markdown.", "firecrawl_scrape",
           env={"FIRECRAWL_API_KEY": "fc-dummy"}),
    Server("context7", "npm", "@upstash/context7-mcp", "4.1.1", "context7-mcp",
           "Find the Context7 library ID of the React documentation.", "resolve-library-id"),
    Server("notion", "npm", "@notionhq/notion-mcp-server", "2.5.2", "notion-mcp-server",
           "Search my Notion workspace for pages titled 'Meeting notes'.", "API-post-search",
           env={"NOTION_TOKEN": "ntn_dummy"}),
    Server("git", "pypi", "mcp-server-git", "2026.10.19", "mcp-server-git",
           "Show the git status of the repository at /sandbox.", "git_status",
           args=("--repository", "{sandbox}"), git_repo=True),
    Server("fetch", "pypi", "mcp-server-fetch", "2026.10.24", "mcp-server-fetch",
           "Fetch the page https://example.com.", "fetch"),
    Server("time", "pypi", "mcp-server-time", "2026.10.19", "mcp-server-time",
           "What time is it in Tokyo?", "get_current_time", args=("--local-timezone", "UTC")),
)


def servers_named(names: Optional[str]) -> list[Server]:
    if not names or names == "all":
        return list(SERVERS)
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name: s for s in SERVERS}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise SystemExit(f"ondevice bench mcp: unknown servers {unknown}: expected some of {sorted(known)}")
    return [known[n] for n in wanted]


# ------------------------------------------------------------------------------------------- install


def cache_dir() -> Path:
    from ondevice.paths import assets_dir

    return assets_dir() / "mcp-servers"


class InstallError(Exception):
    pass


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._=@-]+", "_", text.lstrip("@"))


def install(server: Server, root: Optional[Path] = None) -> Path:
    """The server's executable, installed once into the cache (a folder per package and version; a
    marker file written last tells a finished install from an interrupted one)."""
    root = root or cache_dir()
    target = root / server.registry / _safe(server.spec)
    marker = target / ".ondevice-installed"
    if marker.exists():
        return _executable(server, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    if server.registry == "npm":
        npm = shutil.which("npm")
        if npm is None:
            raise InstallError("npm is not on PATH (install Node.js and npm)")
        work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
        try:
            (work / "package.json").write_text('{"private": true}\n')
            _install_step([npm, "install", "--ignore-scripts", "--no-audit", "--no-fund", "--omit=dev",
                           "--save-exact", "--prefix", str(work), server.spec], server)
            os.replace(work, target)  # node_modules/.bin links are relative: the folder may move
        finally:
            shutil.rmtree(work, ignore_errors=True)
    else:  # a virtual environment of its own (its scripts name their folder, so it is made in place)
        try:
            _install_step([sys.executable, "-m", "venv", str(target)], server)
            _install_step([str(target / "bin" / "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", server.spec], server)
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)
            raise
    if not _executable(server, target).exists():
        raise InstallError(f"{server.spec} installed no executable {server.bin!r}")
    marker.write_text(server.spec + "\n")
    return _executable(server, target)


def _install_step(cmd: list[str], server: Server) -> None:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise InstallError(f"{Path(cmd[0]).name} {cmd[1]} ... for {server.spec} failed (exit {proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-600:]}")


def _executable(server: Server, folder: Path) -> Path:
    if server.registry == "npm":
        return folder / "node_modules" / ".bin" / server.bin
    return folder / "bin" / server.bin


def offline_prefix() -> list[str]:
    """A command prefix that starts a process with no network (a network namespace of its own, where
    only an unconfigured loopback exists), or [] where the kernel does not allow it to this user."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return []
    try:
        ok = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    return [unshare, "-rn"] if ok else []


# ------------------------------------------------------------------------------------------- collect


def server_argv(server: Server, exe: Path, sandbox: Path, prefix: list[str]) -> tuple[list[str], dict[str, str]]:
    """The command line and the environment additions that start `server` in `sandbox`."""
    fill = lambda text: text.replace("{sandbox}", str(sandbox))  # noqa: E731
    env = {"HOME": str(sandbox), "TMPDIR": str(sandbox)}
    env.update({k: fill(v) for k, v in server.env.items()})
    return [*prefix, str(exe), *(fill(a) for a in server.args)], env


def read_tools(argv: list[str], env: dict[str, str], cwd: Path, errlog: Any,
               timeout: float = 120.0) -> list[dict[str, Any]]:
    """The server's tools as ondevice passes them to the model: `MCPServers.tools()`, the path
    ``--mcp`` takes."""
    from ondevice.mcp_client import MCPServers, ServerSpec

    spec = ServerSpec(Path(argv[-1]).name, argv[0], tuple(argv[1:]), env, str(cwd))
    with MCPServers([spec], start_timeout=timeout, errlog=errlog) as servers:
        servers.start()
        return servers.tools()


def read_tools_raw(argv: list[str], env: dict[str, str], cwd: Path, errlog: Any,
                   timeout: float = 120.0) -> list[dict[str, Any]]:
    """``tools/list`` read with plain JSON-RPC over stdio, for a server whose list the SDK refuses to
    parse (it validates each tool): every page, each tool made a tool dict as `MCPServers` makes it."""
    import selectors

    base = {k: v for k in ("PATH", "SHELL", "TERM") if (v := os.environ.get(k)) is not None}
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=errlog, cwd=cwd,
                            env={**base, **env})
    assert proc.stdin is not None and proc.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    buffer = b""

    def send(message: dict[str, Any]) -> None:
        assert proc.stdin is not None
        proc.stdin.write((json.dumps({"jsonrpc": "2.0", **message}) + "\n").encode())
        proc.stdin.flush()

    def answer(ident: int) -> dict[str, Any]:
        nonlocal buffer
        while True:
            while b"\n" in buffer:
                line, buffer = buffer.split(b"\n", 1)
                try:
                    message = json.loads(line)
                except ValueError:
                    continue  # a server's log line on stdout
                if isinstance(message, dict) and message.get("id") == ident:
                    if "error" in message:
                        raise RuntimeError(f"JSON-RPC error: {message['error']}")
                    return message["result"]
            left = deadline - time.monotonic()
            if left <= 0 or not selector.select(left):
                raise TimeoutError(f"no answer within {timeout:g} s")
            chunk = os.read(proc.stdout.fileno(), 1 << 16)  # type: ignore[union-attr]
            if not chunk:
                raise RuntimeError(f"the server exited (status {proc.wait()})")
            buffer += chunk

    try:
        send({"id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                                                          "clientInfo": {"name": "ondevice-bench", "version": "1"}}})
        answer(1)
        send({"method": "notifications/initialized"})
        tools: list[dict[str, Any]] = []
        cursor = None
        for ident in range(2, 1000):
            send({"id": ident, "method": "tools/list", "params": {"cursor": cursor} if cursor else {}})
            page = answer(ident)
            for tool in page.get("tools", []):
                tools.append({"name": tool["name"], "description": tool.get("description") or "",
                              "parameters": tool.get("inputSchema") or {"type": "object", "properties": {}}})
            cursor = page.get("nextCursor")
            if not cursor:
                return tools
        return tools
    finally:
        selector.close()
        proc.stdin.close()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def collect_one(server: Server, out_dir: Path, prefix: list[str]) -> dict[str, Any]:
    from .common import log, utc_now, write_json

    record: dict[str, Any] = {"server": server.name, "registry": server.registry, "package": server.package,
                              "version": server.version, "collected": utc_now(),
                              "started_with": " ".join([server.bin, *server.args]).replace("{sandbox}", SANDBOX),
                              "network": "none (unshare -rn)" if prefix else "not isolated"}
    if server.env:
        record["env"] = {k: v.replace("{sandbox}", SANDBOX) for k, v in server.env.items()}
    start = time.perf_counter()
    try:
        exe = install(server)
    except (InstallError, subprocess.SubprocessError, OSError) as exc:
        record.update(tools=None, error=_clean(f"install failed: {exc}", Path("/nonexistent")))
        log(f"[mcp] {server.name}: {record['error']}")
        write_json(out_dir / f"{server.name}.json", record)
        return record
    with tempfile.TemporaryDirectory(prefix="ondevice-mcp-") as tmp:
        sandbox = Path(tmp) / "sandbox"
        sandbox.mkdir()
        if server.git_repo:
            subprocess.run(["git", "init", "-q", str(sandbox)], check=True, capture_output=True)
        argv, env = server_argv(server, exe, sandbox, prefix)
        errlog_path = Path(tmp) / "stderr.log"
        tools: Optional[list[dict[str, Any]]] = None
        try:
            with open(errlog_path, "w") as errlog:
                tools = read_tools(argv, env, sandbox, errlog)
            record["listed_by"] = "MCPServers (the mcp SDK)"
        except Exception as exc:  # noqa: BLE001 -- recorded: the server does not start offline, or the SDK refuses it
            why = _why(exc, errlog_path)
            try:  # the SDK may refuse a list a plain JSON-RPC read gets
                with open(errlog_path, "w") as errlog:
                    tools = read_tools_raw(argv, env, sandbox, errlog)
                record["listed_by"] = "plain JSON-RPC"
                record["sdk_error"] = _clean(why, sandbox)
                log(f"[mcp] {server.name}: MCPServers refused it ({why.splitlines()[0][:300]}); read with plain JSON-RPC")
            except Exception as raw_exc:  # noqa: BLE001
                record.update(tools=None, error=_clean(why, sandbox), raw_error=_clean(_why(raw_exc, errlog_path), sandbox))
                log(f"[mcp] {server.name}: did not start: {record['error']}")
        if tools is not None:
            text = json.dumps(tools, ensure_ascii=False).replace(str(sandbox), SANDBOX)
            record["tools"] = json.loads(text)
            log(f"[mcp] {server.name}: {len(tools)} tools in {time.perf_counter() - start:.1f} s")
    write_json(out_dir / f"{server.name}.json", record)
    return record


def _clean(text: str, sandbox: Path, limit: int = 800) -> str:
    """An error for the committed record: no local paths, at most `limit` characters."""
    text = text.replace(str(sandbox), SANDBOX).replace(str(cache_dir()), "<cache>")
    return text if len(text) <= limit else text[:limit] + " [...]"


def _why(exc: BaseException, errlog_path: Path) -> str:
    why = f"{type(exc).__name__}: {exc}"
    stderr = errlog_path.read_text(errors="replace").strip() if errlog_path.exists() else ""
    return why + (f"; its stderr ends: {stderr[-400:]}" if stderr else "")


def collect(args: Any) -> int:
    from .common import log

    out_dir = Path(args.fixtures) if args.fixtures else FIXTURES_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = offline_prefix()
    if not prefix:
        log("[mcp] warning: cannot start processes without network here (unshare -rn); the servers run with it")
    failed = 0
    for server in servers_named(args.servers):
        failed += collect_one(server, out_dir, prefix).get("tools") is None
    log(f"[mcp] collected into {out_dir}; {failed} server(s) did not start")
    return 0


# ----------------------------------------------------------------------------------------------- run


def load_fixtures(folder: Optional[Path] = None, names: Optional[str] = None) -> list[dict[str, Any]]:
    folder = folder or FIXTURES_DIR
    wanted = {s.name for s in servers_named(names)}
    records = [json.loads(p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.json"))]
    order = {s.name: i for i, s in enumerate(SERVERS)}
    return sorted((r for r in records if r["server"] in wanted), key=lambda r: order.get(r["server"], 999))


def check_toolset(tools: list[dict[str, Any]]) -> dict[str, Any]:
    """ondevice's own check of a whole toolset, as a call makes it before the model runs: normalized
    and compiled into one grammar (`check_tools`). A refusal is recorded, not raised."""
    from ondevice.api import check_tools
    from ondevice.errors import OndeviceError
    from ondevice.schema.tools import relaxations
    from ondevice.settings import Settings

    try:
        normalized, _ = check_tools(tools, Settings())
    except OndeviceError as exc:
        refused = []
        for tool in tools:  # which tools, alone, are refused
            try:
                check_tools([tool], Settings())
            except OndeviceError as one:
                refused.append({"tool": tool.get("name"), "error": str(one)})
        return {"tools": len(tools), "accepted": len(tools) - len(refused), "refused_whole": str(exc),
                "refused": refused, "relaxed": []}
    return {"tools": len(tools), "accepted": len(normalized), "refused_whole": None, "refused": [],
            "relaxed": [r.to_dict() for r in relaxations(normalized)],
            "tools_relaxed": sorted({t.name for t in normalized if t.relaxed})}


COMMON_KEYWORDS = frozenset({"type", "properties", "required", "description", "title", "$schema"})


def keyword_counts(tools: list[dict[str, Any]]) -> dict[str, int]:
    """How often each keyword stands at a schema position of the tools' parameters (the key names of
    `properties` and `$defs` and the values of `enum`, `const`, `default` and `examples` are no
    keywords and are not counted), most frequent first."""
    from collections import Counter

    from ondevice.schema.tools import SUBSCHEMA, SUBSCHEMA_LIST, SUBSCHEMA_MAP

    counts: Counter[str] = Counter()

    def walk(node: Any) -> None:
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            counts[key] += 1
            if key in SUBSCHEMA_MAP and isinstance(value, dict):
                for sub in value.values():
                    walk(sub)
            elif (key in SUBSCHEMA_LIST or key == "items") and isinstance(value, list):
                for sub in value:
                    walk(sub)
            elif key in SUBSCHEMA or key in ("items", "additionalItems"):
                walk(value)
            elif key == "dependencies" and isinstance(value, dict):
                for sub in value.values():
                    walk(sub)

    for tool in tools:
        walk(tool.get("parameters"))
    return dict(counts.most_common())


def original_errors(tool: dict[str, Any], arguments: Any) -> list[str]:
    """jsonschema's errors for `arguments` under the tool's schema as the server sent it (read with
    the draft its ``$schema`` names, else 2020-12)."""
    import jsonschema

    schema = tool.get("parameters") or {"type": "object"}
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return [f"{'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in cls(schema).iter_errors(arguments)]


def call_one(caller: Any, server: Server, tools: list[dict[str, Any]], settings: Any) -> dict[str, Any]:
    by_name = {t["name"]: t for t in tools}
    start = time.perf_counter()
    try:
        result = caller.call(server.query, tools, settings=settings)
    except Exception as exc:  # noqa: BLE001 -- recorded and counted
        return {"query": server.query, "expected_tool": server.tool, "error": f"{type(exc).__name__}: {exc}",
                "seconds": round(time.perf_counter() - start, 1)}
    seconds = time.perf_counter() - start
    calls = []
    for call in result.calls or []:
        tool = by_name.get(call.name)
        errors = original_errors(tool, call.arguments) if tool is not None else [f"no tool named {call.name!r}"]
        calls.append({"name": call.name, "arguments": call.arguments, "valid": not errors, "errors": errors[:5]})
    return {
        "query": server.query,
        "expected_tool": server.tool,
        "calls": calls,
        "message": result.message,
        "finish_reason": result.finish_reason,
        "truncated": result.truncated,
        "valid": all(c["valid"] for c in calls),
        "expected_tool_called": any(c["name"] == server.tool for c in calls),
        "relaxed": [r.to_dict() for r in result.relaxed],
        "seconds": round(seconds, 1),
        "prompt_tokens": int(result.timings.get("prompt_tokens", 0)),
        "prompt_eval_s": result.timings.get("prompt_eval_s"),
        "resampled_calls": result.timings.get("resampled_calls", 0),
    }


def run(args: Any) -> int:
    if getattr(args, "action", "run") == "collect":
        return collect(args)
    from . import RESULTS_DIR
    from .common import command_line, git_commit, log, machine_info, utc_now, write_json

    folder = Path(args.fixtures) if args.fixtures else FIXTURES_DIR
    records = load_fixtures(folder, args.servers)
    if not records:
        raise SystemExit(f"ondevice bench mcp: no tool lists in {folder}: run `ondevice bench mcp collect` first")
    known = {s.name: s for s in SERVERS}
    rows: list[dict[str, Any]] = []
    for record in records:
        row: dict[str, Any] = {"server": record["server"], "package": record["package"], "version": record["version"],
                               "listed_by": record.get("listed_by")}
        if record.get("tools") is None:
            row["not_collected"] = record.get("error", "?")
        else:
            row["check"] = check_toolset(record["tools"])
            row["schema_bytes"] = len(json.dumps(record["tools"], ensure_ascii=False).encode())
            row["keywords"] = keyword_counts(record["tools"])
            c = row["check"]
            log(f"[mcp] {record['server']}: {c['accepted']}/{c['tools']} tools accepted, "
                f"{len(c['relaxed'])} keyword(s) relaxed" + (f"; REFUSED: {c['refused_whole']}" if c["refused_whole"] else ""))
        rows.append(row)
    data: dict[str, Any] = {"benchmark": "mcp-servers", "date": utc_now(), "command": command_line(args).replace("bench mcp", "bench mcp run", 1),
                            "git_commit": git_commit(), "machine": machine_info(), "model": None, "servers": rows}
    if not args.no_model:
        from ondevice import Settings, ToolCaller
        from .examples import PINNED_DATE

        settings = Settings(n_ctx=args.n_ctx, n_threads=args.threads, max_tokens=args.max_tokens,
                            date_string=PINNED_DATE)
        load_start = time.perf_counter()
        with ToolCaller.load(args.model, settings) as caller:
            data["model"] = args.model
            data["load_s"] = round(time.perf_counter() - load_start, 1)
            data["settings"] = {"n_ctx": args.n_ctx, "threads": args.threads, "max_tokens": args.max_tokens,
                                "temperature": settings.temperature}
            for record, row in zip(records, rows):
                if record.get("tools") is None or row["check"]["refused_whole"]:
                    continue
                row["call"] = call_one(caller, known[record["server"]], record["tools"], None)
                c = row["call"]
                log(f"[mcp] {record['server']}: {[(x['name'], x['arguments']) for x in c.get('calls', [])]} "
                    f"valid={c.get('valid')} {c['seconds']} s, {c.get('prompt_tokens')} prompt tokens"
                    + (f" ERROR {c['error']}" if "error" in c else ""))
    out = Path(args.out) if args.out else RESULTS_DIR / RESULT_NAME
    write_json(out, data)
    print(format_tables(data) + "\n\n" + format_keywords(data))
    return 0


# -------------------------------------------------------------------------------------------- tables


def _relaxed_cell(relaxed: list[dict[str, str]], limit: Optional[int] = None) -> str:
    """``tool: keyword, keyword at path; ...`` (the keywords of one place together)."""
    if not relaxed:
        return "none"
    places: dict[tuple[str, str], list[str]] = {}
    for r in relaxed:
        places.setdefault((r["tool"], r["path"]), []).append(r["keyword"])
    parts = [f"`{tool}`: {', '.join(f'`{k}`' for k in keywords)} at `{path}`"
             for (tool, path), keywords in places.items()]
    if limit is not None and len(parts) > limit:
        parts = parts[:limit] + [f"and {len(relaxed) - limit} more"]
    return "; ".join(parts)


def _call_cell(call: Optional[dict[str, Any]], limit: int = 120) -> str:
    if call is None:
        return "not run"
    if "error" in call:
        return f"error: {call['error'][:limit]}"
    if not call.get("calls"):
        return f"no call: {call.get('message') or '[]'}"[:limit]
    shown = []
    for c in call["calls"]:
        args = json.dumps(c["arguments"], ensure_ascii=False)
        if len(args) > limit:
            args = args[:limit] + "…"
        shown.append(f"`{c['name']}({args})`")
    return ", ".join(shown)


def _verdict(call: Optional[dict[str, Any]]) -> str:
    if call is None:
        return "-"
    if "error" in call:
        return "error"
    if not call.get("calls"):
        return "answer"
    return ("valid" if call["valid"] else "INVALID") + ("" if call["expected_tool_called"] else " (other tool)")


def format_tables(data: dict[str, Any], *, short: bool = False) -> str:
    """The per-server table (``short``: the README's, fewer columns)."""
    if short:
        lines = ["| server (package@version) | tools | relaxed (tool: keyword at path) | the query's answer |",
                 "|---|---:|---|---|"]
    else:
        lines = ["| server (package@version) | tools | accepted | relaxed (tool: keyword at path) | query | call | "
                 "valid | s | prompt tokens |", "|---|---:|---:|---|---|---|---|---:|---:|"]
    for row in data["servers"]:
        name = row["server"]
        if "not_collected" in row:
            reason = row["not_collected"].split("; its stderr", 1)[0][:160]
            if short:
                lines.append(f"| {name} | - | not collected: {reason} | - |")
            else:
                lines.append(f"| {name} (`{row['package']}@{row['version']}`) | - | - | not collected: {reason} "
                             "| - | - | - | - | - |")
            continue
        c = row["check"]
        if row.get("listed_by") == "plain JSON-RPC":
            name += "¹"
        relaxed = _relaxed_cell(c["relaxed"], 3 if short else None)
        if c["refused_whole"]:
            relaxed = f"REFUSED: {c['refused_whole'][:200]}"
        call = row.get("call")
        if short:
            named = ", ".join(f"`{x['name']}`" for x in call["calls"]) if call and call.get("calls") else ""
            lines.append(f"| {name} (`{row['package']}@{row['version']}`) | {c['tools']} | {relaxed} | "
                         f"{named + ': ' if named else ''}{_verdict(call)} |")
        else:
            lines.append(
                f"| {name} (`{row['package']}@{row['version']}`) | {c['tools']} | {c['accepted']} | {relaxed} | "
                f"{call['query'] if call else '-'} | {_call_cell(call)} | {_verdict(call)} | "
                f"{call['seconds'] if call else '-'} | {call.get('prompt_tokens', '-') if call else '-'} |")
    if any(row.get("listed_by") == "plain JSON-RPC" for row in data["servers"]):
        lines += ["", "¹ The `mcp` SDK refuses this server's `tools/list` (an `inputSchema` without `type`), so "
                  "`--mcp` cannot start it; its list was read with plain JSON-RPC."]
    return "\n".join(lines)


def format_keywords(data: dict[str, Any]) -> str:
    """Per server, the keywords its schemas use beyond type/properties/required/description/title."""
    lines = ["| server | schema bytes | keywords beyond type, properties, required, description, title (count) |",
             "|---|---:|---|"]
    for row in data["servers"]:
        if "keywords" not in row:
            continue
        used = [f"`{k}` {n}" for k, n in row["keywords"].items() if k not in COMMON_KEYWORDS]
        lines.append(f"| {row['server']} | {row['schema_bytes']:,} | {', '.join(used) or '-'} |")
    return "\n".join(lines)
