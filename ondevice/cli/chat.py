"""`ondevice chat`: interactive multi-turn tool calling (one query per line)."""

from __future__ import annotations

import argparse
import json
import sys

from ..api import ToolCaller
from .options import add_model_options, load_tools, settings_from_args

EXAMPLES = """\
examples:
  ondevice chat --tools examples/multi_turn/tools.json
  printf 'Weather in Madrid in celsius?\\nAnd in Edinburgh?\\n' | ondevice chat --tools tools.json

Each answer goes back into the conversation as json.dumps(calls), as the model card's multi-turn
example does. An empty line, "exit" or end of input ends the session.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("chat", help="multi-turn tool calling, one query per line", description=__doc__,
                       epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", "-t", help="JSON file with the list of tools")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    tools = load_tools(args.tools)
    caller = ToolCaller.load(args.model, settings_from_args(args))
    if caller.resolved is not None and caller.resolved.note:
        print(caller.resolved.note, file=sys.stderr)
    conversation = caller.conversation(tools)
    interactive = sys.stdin.isatty()
    while True:
        if interactive:
            print("> ", end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
        query = line.strip()
        if not line or not query or query in ("exit", "quit"):
            return 0
        result = conversation.ask(query)
        if result.message is not None:
            print(f"ondevice: no call; the model answered: {result.message}", file=sys.stderr, flush=True)
        print(json.dumps(result.calls_as_dicts() if result.calls is not None else result.text, ensure_ascii=False),
              flush=True)
