"""Options shared by the subcommands that run a model, and reading a tools file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from ..chat_template import ChatTemplateError
from ..errors import ToolSchemaError
from ..settings import Settings


def add_model_options(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("model and decoding")
    g.add_argument("--model", "-m", help="a .gguf path, an alias (see `ondevice models`) or a hub repo id "
                   "(owner/name[:QUANT]); default: the fine-tune if pulled, else the stand-in")
    g.add_argument("--n-ctx", type=int, default=4096, help="context window in tokens (default 4096)")
    g.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    g.add_argument("--n-gpu-layers", type=int, default=0,
                   help="layers to offload to Metal/CUDA (-1: all; needs a GPU build of llama-cpp-python)")
    g.add_argument("--temperature", type=float, default=0.0, help="0 is greedy (default)")
    g.add_argument("--seed", type=int, default=0, help="sampling seed (with --temperature > 0)")
    g.add_argument("--max-tokens", type=int, default=512, help="budget of generated tokens (default 512)")
    g.add_argument("--no-grammar", action="store_true",
                   help="free generation without the tool-call grammar (no validity guarantee)")
    g.add_argument("--date-string", help='pin the "Today Date" of the Llama 3.2 template, e.g. "26 Jul 2024"')
    g.add_argument("--prefix-cache-dir", help="keep evaluated tool prefixes (KV snapshots) here, so the next "
                   "process with the same model and tools skips evaluating them")
    g.add_argument("--chat-template", help="a Jinja chat template file to use instead of the model's own")
    g.add_argument("--no-call", choices=["list", "text", "threshold"], default=None,
                   help="an answer without a call: list (<tool_call>[]</tool_call>), text (the model may answer "
                        "with a sentence), threshold (P(sentence) at the first token decides); default: the model's")
    g.add_argument("--no-call-threshold", type=float, default=None,
                   help="with --no-call threshold: take the sentence when its probability is at least this")


def settings_from_args(args: argparse.Namespace) -> Settings:
    return Settings(
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        n_gpu_layers=args.n_gpu_layers,
        temperature=args.temperature,
        seed=args.seed,
        max_tokens=args.max_tokens,
        constrained=not args.no_grammar,
        date_string=args.date_string,
        chat_template=read_chat_template(args.chat_template),
        prefix_cache_dir=args.prefix_cache_dir,
        no_call=args.no_call,
        no_call_threshold=args.no_call_threshold,
    )


def read_chat_template(source: Optional[str]) -> Optional[str]:
    """The Jinja source of a --chat-template file; None when not given."""
    if source is None:
        return None
    path = Path(source)
    if not path.is_file():
        raise ChatTemplateError(f"chat template file not found: {path} (pass a Jinja file, e.g. the model's chat_template)")
    return path.read_text(encoding="utf-8")


def load_tools(source: Optional[str]) -> Optional[list[Any]]:
    """Tools from a JSON file (a list of tools, or {"tools": [...]}) or '-' for stdin; None when absent."""
    if source is None:
        return None
    if source == "-":
        text, where = sys.stdin.read(), "stdin"
    else:
        path = Path(source)
        if not path.is_file():
            raise ToolSchemaError(f"tools file not found: {path} (pass a JSON file holding a list of tools)")
        text, where = path.read_text(encoding="utf-8"), str(path)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ToolSchemaError(f"{where} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}") from None
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    return data
