"""Options shared by the subcommands that run a model, and reading a tools file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

from ..errors import ChatTemplateError, ToolSchemaError
from ..paths import examples_dir, prefix_cache_dir
from ..settings import Settings


def example_path() -> str:
    """Where the card's examples are, as the help shows it: relative when under the current directory."""
    folder = examples_dir()
    try:
        return str(folder.relative_to(folder.cwd()))
    except ValueError:
        return str(folder)


def add_model_options(parser: argparse.ArgumentParser) -> None:
    d = Settings()  # the defaults live there, not here
    g = parser.add_argument_group("model and decoding")
    g.add_argument("--model", "-m", help="a .gguf path, an alias (see `ondevice models`) or a hub repo id "
                   "(owner/name[:QUANT]); default: the fine-tune if pulled, else the stand-in")
    g.add_argument("--n-ctx", type=int, default=d.n_ctx, help=f"context window in tokens (default {d.n_ctx})")
    g.add_argument("--threads", type=int, default=d.n_threads, help="CPU threads (default: all cores)")
    g.add_argument("--n-gpu-layers", type=int, default=d.n_gpu_layers,
                   help="layers to offload to Metal/CUDA (-1: all; needs a GPU build of llama-cpp-python)")
    g.add_argument("--temperature", type=float, default=d.temperature, help=f"0 is greedy (default {d.temperature:g})")
    g.add_argument("--seed", type=int, default=d.seed, help=f"sampling seed (with --temperature > 0; default {d.seed})")
    g.add_argument("--max-tokens", type=int, default=d.max_tokens,
                   help=f"budget of generated tokens (default {d.max_tokens})")
    g.add_argument("--no-grammar", action="store_true",
                   help="free generation without the tool-call grammar (no validity guarantee)")
    g.add_argument("--date-string", help='pin the "Today Date" of the Llama 3.2 template, e.g. "26 Jul 2024"')
    g.add_argument("--prefix-cache-dir", help="keep evaluated tool prefixes (KV snapshots) here, so the next "
                   "process with the same model and tools skips evaluating them (default: prefix-cache/ in the "
                   "ondevice cache directory)")
    g.add_argument("--no-prefix-cache", action="store_true", help="do not read or write the on-disk prefix cache")
    g.add_argument("--chat-template", help="a Jinja chat template file to use instead of the model's own")


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
        prefix_cache_dir=None if args.no_prefix_cache else (args.prefix_cache_dir or str(prefix_cache_dir())),
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
