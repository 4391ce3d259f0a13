"""`ondevice call`: one query, tool calls on stdout as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from ..api import ToolCaller, check_tools
from ..errors import ToolChoiceError
from ..formats.prompt import check_query
from ..schema.grammar_schema import relaxed_warning
from ..schema.tools import relaxations
from .options import add_model_options, add_tool_choice_options, call_options, example_path, load_tools, settings_from_args
from .run_tools import add_run_options, run_with_mcp

EXAMPLES = """\
examples:
  ondevice call "What's the weather like in New York in fahrenheit?" --tools {examples}/simple/tools.json
  ondevice call "What is the capital of Brazil?" --tools {examples}/multiple/tools.json --json
  cat tools.json | ondevice call "Find flights to Oslo" --tools - --model ./model.Q4_K_M.gguf
  ondevice call "Hello" --tools tools.json --temperature 0.8 --seed 7
  ondevice call "Weather in Oslo?" --tools tools.json --tool-choice required   # a call, whatever the model thinks
  ondevice call "What time is it in Tokyo?" --mcp mcp.json        # runs the MCP servers' tools, asking first
  ondevice call "What time is it in Tokyo?" --mcp mcp.json --yes  # ... without asking

  mcp.json: {{"mcpServers": {{"time": {{"command": "mcp-server-time", "args": ["--local-timezone", "UTC"]}}}}}}

Prints the calls as a JSON array ([] when no tool fits); --json prints the whole result
(calls, raw text, finish reason, timings). With --mcp, each call and its result go to stderr and the
final answer to stdout (--json: the text, every step and why the run stopped). Exit status 2 on bad
input, with a message on stderr.
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("call", help="answer one query with tool calls", description=__doc__,
                       epilog=EXAMPLES.format(examples=example_path()), formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("query", help="the question to answer")
    p.add_argument("--tools", "-t", help="JSON file with the list of tools ('-' for stdin); none: answers []")
    p.add_argument("--json", action="store_true", help="print the whole result as JSON, not only the calls")
    add_tool_choice_options(p)
    add_run_options(p)
    add_model_options(p, repack=False)  # one process, one call: loading fast beats decoding 12% faster
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_query(args.query)  # before the model loads
    settings = settings_from_args(args)
    tools = load_tools(args.tools, settings)
    normalized, _ = check_tools(tools, settings)  # a bad or unsatisfiable schema fails before the model loads
    options = call_options(args.tool_choice, not args.no_parallel_tool_calls, [t.name for t in normalized])
    if (warning := relaxed_warning(relaxations(normalized))) is not None:
        print(warning, file=sys.stderr)
    if args.mcp is not None:
        if args.tool_choice != "auto" or args.no_parallel_tool_calls:
            raise ToolChoiceError("--tool-choice and --no-parallel-tool-calls shape one answer; with --mcp the "
                                  "run goes on while the model calls tools: leave them out there")
        return run_with_mcp(args, settings, tools, [args.query])
    caller = ToolCaller.load(args.model, settings)
    if caller.resolved is not None and caller.resolved.note:
        print(caller.resolved.note, file=sys.stderr)
    result = caller.call(args.query, tools, options=options)
    if result.truncated:
        print(f"ondevice: the budget of {args.max_tokens} tokens ran out; the list was closed after the last "
              "complete call (raise --max-tokens)", file=sys.stderr)
    if result.reasoning and not args.json:
        print(f"ondevice: the model thought: {result.reasoning}", file=sys.stderr)
    if result.message is not None and not args.json:
        print(f"ondevice: no call; the model answered: {result.message}", file=sys.stderr)
    if args.json:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    elif result.calls is not None:
        print(json.dumps(result.calls_as_dicts(), ensure_ascii=False))
    else:
        print(result.text)
    return 0
