"""`ondevice chat`: interactive multi-turn tool calling (one query per line)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Iterator

from ..api import ToolCaller, check_tools
from ..errors import InputLimitError, QueryError
from ..schema.grammar_schema import relaxed_warning
from ..schema.tools import relaxations
from ..settings import Settings
from .options import add_model_options, example_path, load_tools, settings_from_args
from .run_tools import add_run_options, run_with_mcp

EXAMPLES = """\
examples:
  ondevice chat --tools {examples}/multi_turn/tools.json
  printf 'Weather in Madrid in celsius?\\nAnd in Edinburgh?\\n' | ondevice chat --tools tools.json

Each answer goes back into the conversation as json.dumps(calls), as the model card's multi-turn
example does. An empty line, "exit" or end of input ends the session.

With --mcp, ondevice runs the tools of MCP servers: each call is printed to stderr and asked about
(y/N on the terminal; --yes runs it without asking; no terminal and no --yes: refused, exit 2), its
result goes back to the model, and the model's final answer is printed on stdout:
  ondevice chat --mcp mcp.json
  echo "What time is it in Tokyo?" | ondevice chat --mcp mcp.json --yes

  mcp.json: {{"mcpServers": {{"time": {{"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}}}}}}
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="multi-turn tool calling, one query per line", description=__doc__,
                       epilog=EXAMPLES.format(examples=example_path()), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", "-t", help="JSON file with the list of tools")
    add_run_options(p)
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    tools = load_tools(args.tools, settings)
    normalized, _ = check_tools(tools, settings)  # a bad or unsatisfiable schema fails before the model loads
    if (warning := relaxed_warning(relaxations(normalized))) is not None:
        print(warning, file=sys.stderr)
    if args.mcp is not None:
        return run_with_mcp(args, settings, tools, _queries(settings))
    caller = ToolCaller.load(args.model, settings)
    if caller.resolved is not None and caller.resolved.note:
        print(caller.resolved.note, file=sys.stderr)
    conversation = caller.conversation(tools)
    for query in _queries(settings):
        result = conversation.ask(query)
        if result.message is not None:
            print(f"ondevice: no call; the model answered: {result.message}", file=sys.stderr, flush=True)
        print(json.dumps(result.calls_as_dicts() if result.calls is not None else result.text, ensure_ascii=False),
              flush=True)
    return 0


def _queries(settings: Settings) -> Iterator[str]:
    """The queries on stdin, one a line, until an empty line, "exit" or the end of input."""
    interactive = sys.stdin.isatty()
    number = 0
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        raw = sys.stdin.buffer.readline(settings.max_body_bytes + 1)
        number += 1
        if len(raw) > settings.max_body_bytes:
            raise InputLimitError(f"input line {number}: a query line is longer than {settings.max_body_bytes} "
                                  "bytes (setting max_body_bytes): send shorter queries")
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise QueryError(f"input line {number} is not UTF-8 text (byte {raw[exc.start]:#04x} at offset "
                             f"{exc.start}): type or pipe UTF-8") from None
        query = line.strip()
        if not line or not query or query in ("exit", "quit"):
            return
        yield query
