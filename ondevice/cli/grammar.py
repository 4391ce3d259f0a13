"""`ondevice grammar`: export the rendered prompt and the tool-call grammar (Lark for llguidance, GBNF
for llama.cpp) for a set of tools and a tool_choice, to serve the model with another engine."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from ..api import ToolCaller, check_tools
from ..formats.grammar import tool_call_lark
from ..formats import get_format
from ..grammar.export import tool_call_gbnf
from ..paths import atomic_path
from ..formats.prompt import prepare_messages, template_tools
from .options import add_model_options, add_tool_choice_options, call_options, load_tools, settings_from_args

QUERY_PLACEHOLDER = "{query}"

EXAMPLES = """\
examples:
  ondevice grammar --tools examples/simple/tools.json --out export/
  ondevice grammar --tools tools.json --tool-choice required --no-parallel-tool-calls --out export/
  ondevice grammar --tools tools.json --tool-choice get_weather --query "Weather in Oslo?" --out export/

Writes into --out: prompt.txt (the prompt rendered with the model's chat template, ending where the
answer starts; without --query it holds the placeholder {query}), messages.json (the same as chat
messages, for engines that apply the template themselves), tool_call.lark (llguidance: vLLM's
structured outputs, llama.cpp built with LLGUIDANCE) and tool_call.gbnf (llama.cpp's grammar sampler:
llama-server's "grammar" field). See docs/server.md, "Scaling out".
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("grammar", help="export the prompt and the tool-call grammar (Lark, GBNF) for other engines",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tools", "-t", required=True, help="JSON file with the list of tools ('-' for stdin)")
    add_tool_choice_options(p)
    p.add_argument("--query", default=None, help=f"the user's query for prompt.txt (default: the placeholder {QUERY_PLACEHOLDER})")
    p.add_argument("--out", "-o", required=True, help="folder to write the four files into")
    add_model_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    settings = settings_from_args(args)
    tools = load_tools(args.tools, settings) or []
    normalized, _ = check_tools(tools, settings)  # the runtime's checks: limits, values, the grammar compiles
    options = call_options(args.tool_choice, not args.no_parallel_tool_calls, [t.name for t in normalized])
    with ToolCaller.load(args.model, settings) as caller:
        tool_format = caller.tool_format()
        messages = prepare_messages(args.query or QUERY_PLACEHOLDER, tools, None, tool_format)
        prompt = caller.render(messages, tools=template_tools(tools, tool_format))
    options = replace(options, tool_format=tool_format)
    lark = tool_call_lark(normalized, options)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    files = {"prompt.txt": prompt, "messages.json": json.dumps(messages, indent=2, ensure_ascii=False) + "\n",
             "tool_call.lark": lark}
    frame = getattr(get_format(tool_format), "list_frame", None)  # the formats with one list block
    if frame is not None:
        files["tool_call.gbnf"] = tool_call_gbnf(normalized, frame, options)
    for name, text in files.items():
        with atomic_path(out / name) as tmp:
            tmp.write_text(text, encoding="utf-8")
        print(out / name)
    return 0
