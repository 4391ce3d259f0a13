"""`--mcp`: `ondevice call` and `ondevice chat` run the tools of MCP servers, asking before each call.

Shared by call.py and chat.py: the options, the servers started from the config, the consent prompt on
the terminal (refused at once when there is none and no --yes: a piped run must not wait on a prompt
nobody sees), and each call and its result printed to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable, Iterable, Optional

from ..api import ToolCaller, check_tools
from ..errors import OndeviceError, SettingsError
from ..formats.blocks import ToolCall
from ..mcp_client import MCPServers
from ..runner import Step
from ..schema.grammar_schema import relaxed_warning
from ..schema.tools import relaxations
from ..settings import Settings

RESULT_SHOWN = 2000  # characters of a tool's result printed to stderr (the model reads all of it)


class ConsentError(OndeviceError):
    """Tools would run, but there is no terminal to ask and no --yes."""


def add_run_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("running tools (MCP)")
    g.add_argument("--mcp", metavar="CONFIG", help="start the stdio MCP servers of this JSON config "
                   '({"mcpServers": {"NAME": {"command": ..., "args": [...], "env": {...}}}}, as Claude Desktop and '
                   "LM Studio write it) and run the calls the model makes: call, result, ..., a final answer")
    g.add_argument("--yes", "-y", action="store_true",
                   help="with --mcp: run each call without asking (default: ask y/N on the terminal before each)")
    g.add_argument("--max-turns", type=int, default=8,
                   help="with --mcp: the most model answers in one run (default 8)")


class Terminal:
    """The controlling terminal, opened for the prompt: a reader and a writer (a terminal is not
    seekable, so one "r+" file cannot be both)."""

    def __init__(self) -> None:
        self.reader = open("/dev/tty", "r", encoding="utf-8", errors="replace")
        try:
            self.writer = open("/dev/tty", "w", encoding="utf-8")
        except OSError:
            self.reader.close()
            raise

    def write(self, text: str) -> int:
        return self.writer.write(text)

    def flush(self) -> None:
        self.writer.flush()

    def readline(self) -> str:
        return self.reader.readline()

    def close(self) -> None:
        self.reader.close()
        self.writer.close()


def open_terminal(yes: bool) -> Optional[Terminal]:
    """The terminal to ask on (None with --yes); ConsentError when there is none to ask."""
    if yes:
        return None
    try:
        return Terminal()  # stdin may be the queries: ask the terminal itself
    except OSError:
        raise ConsentError("--mcp asks before each tool runs, but there is no terminal to ask on: pass --yes to run "
                           "the calls without asking") from None


def run_tools(servers: MCPServers, extra: Optional[list[Any]]) -> tuple[list[Any], dict[str, Callable[..., Any]]]:
    """The tools and executors `caller.run` gets: the servers', and --tools' tools, which have nothing
    here to run them (a call to one gets an error result that says so)."""
    tools: list[Any] = [servers]
    executors: dict[str, Callable[..., Any]] = {}
    for tool in extra or []:
        spec = tool["function"] if isinstance(tool, dict) and isinstance(tool.get("function"), dict) else tool
        name = spec.get("name") if isinstance(spec, dict) else None
        if isinstance(name, str):
            executors[name] = _not_runnable(name)
        tools.append(tool)
    return tools, executors


def _not_runnable(name: str) -> Callable[..., Any]:
    def run(**_: Any) -> Any:
        raise LookupError(f"{name} comes from --tools, and ondevice has nothing to run it with (only MCP tools run)")
    return run


def confirm_with(terminal: Optional[Any]) -> Callable[[ToolCall], bool]:
    """Print each call to stderr, then ask y/N on `terminal` (None: run it without asking)."""
    def confirm(call: ToolCall) -> bool:
        shown = f"{call.name}({json.dumps(call.arguments, ensure_ascii=False)})"
        print(f"ondevice: call {shown}", file=sys.stderr, flush=True)
        if terminal is None:
            return True
        terminal.write(f"ondevice: run {call.name}? [y/N] ")
        terminal.flush()
        answer = terminal.readline()
        return answer.strip().lower() in ("y", "yes")
    return confirm


def print_step(step: Step) -> None:
    """A call's result (or its failure) on stderr, cut to RESULT_SHOWN characters."""
    text = step.result if len(step.result) <= RESULT_SHOWN else step.result[:RESULT_SHOWN] + " [...]"
    what = "failed" if step.error is not None else "returned"
    print(f"ondevice: {step.call.name} {what}: {text}", file=sys.stderr, flush=True)


def run_with_mcp(args: argparse.Namespace, settings: Settings, tools: Optional[list[Any]],
                 queries: Iterable[str]) -> int:
    """Answer each query by running tools (the MCP servers', asking first unless --yes): every call and
    result on stderr, each final answer on stdout; the conversation goes on from one query to the next."""
    if args.max_turns < 1:
        raise SettingsError(f"--max-turns must be at least 1, got {args.max_turns}")
    terminal = open_terminal(args.yes)  # no terminal and no --yes: refused before anything starts
    servers: Optional[MCPServers] = None
    try:
        servers = MCPServers.from_config(args.mcp)  # a bad config or server fails before the model loads
        normalized, _ = check_tools(servers.tools(), settings)  # so does a tool schema ondevice refuses
        if (warning := relaxed_warning(relaxations(normalized))) is not None:
            print(warning, file=sys.stderr, flush=True)  # as for --tools (call.py, chat.py): what is relaxed
        run_list, executors = run_tools(servers, tools)
        caller = ToolCaller.load(args.model, settings)
        if caller.resolved is not None and caller.resolved.note:
            print(caller.resolved.note, file=sys.stderr)
        history = None
        for query in queries:
            result = caller.run(query, run_list, max_turns=args.max_turns, history=history, executors=executors,
                                confirm=confirm_with(terminal), on_step=print_step)
            history = result.messages
            if result.stopped_by == "max_turns":
                print(f"ondevice: stopped after {result.turns} turns without a final answer (raise --max-turns)",
                      file=sys.stderr, flush=True)
            elif result.stopped_by == "max_tokens":
                print(f"ondevice: the budget of {args.max_tokens} tokens ran out inside a call (raise --max-tokens)",
                      file=sys.stderr, flush=True)
            if getattr(args, "json", False):
                print(json.dumps(result.to_dict(), ensure_ascii=False), flush=True)
            else:
                print(result.text, flush=True)
        return 0
    finally:
        if servers is not None:
            servers.close()
        if terminal is not None:
            terminal.close()
