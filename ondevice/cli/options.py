"""Options shared by the subcommands that run a model, and reading the files they name."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Optional

from ..errors import ChatTemplateError, InputLimitError, OndeviceError, ToolChoiceError, ToolSchemaError
from ..grammar.calls import CallOptions
from ..schema.limits import check_tool_limits, parse_json_body
from ..paths import examples_dir, prefix_cache_dir
from ..settings import Settings


def example_path() -> str:
    """Where the card's examples are, as the help shows it: relative when under the current directory."""
    folder = examples_dir()
    try:
        return str(folder.relative_to(folder.cwd()))
    except ValueError:
        return str(folder)


def add_model_options(parser: argparse.ArgumentParser, repack: bool = Settings.repack) -> None:
    """The model and decoding options; `repack` is this command's default for --repack (off for the
    one-shot `call`, where the load it costs outweighs the faster decode)."""
    d = Settings()  # the defaults live there, not here
    g = parser.add_argument_group("model and decoding")
    g.add_argument("--model", "-m", help="a .gguf path, an alias (see `ondevice models`) or a hub repo id "
                   "(owner/name[:QUANT]); default: the best tool-calling model installed (the fine-tune, "
                   "then Qwen2.5-Coder, then the stand-in)")
    g.add_argument("--n-ctx", type=int, default=d.n_ctx,
                   help=f"context window in tokens (default {d.n_ctx}; at most the model's training context)")
    g.add_argument("--threads", type=int, default=d.n_threads, help="CPU threads (default: all cores; at most 512)")
    g.add_argument("--n-gpu-layers", type=int, default=d.n_gpu_layers,
                   help="layers to offload to Metal/CUDA (-1: all; needs a GPU build of llama-cpp-python)")
    g.add_argument("--repack", action=argparse.BooleanOptionalAction, default=repack,
                   help="copy the weights into llama.cpp's faster CPU layout at load: decode ~12%% faster, "
                        f"load ~0.5 s slower on a 1B model (default: {'on' if repack else 'off'} for this command)")
    g.add_argument("--temperature", type=float, default=d.temperature,
                   help=f"0 is greedy (default {d.temperature:g}); at most 100")
    g.add_argument("--seed", type=int, default=d.seed,
                   help=f"sampling seed, 0 to 2^32-1 (with --temperature > 0; default {d.seed})")
    g.add_argument("--max-tokens", type=int, default=d.max_tokens,
                   help=f"budget of generated tokens (default {d.max_tokens})")
    g.add_argument("--max-calls", type=int, default=d.max_calls,
                   help=f"the most calls in one answer (default {d.max_calls}; 0: no bound)")
    g.add_argument("--max-identical-calls", type=int, default=d.max_identical_calls,
                   help=f"the most times one call (name and arguments) may appear in an answer; one more ends the list "
                        f"(default {d.max_identical_calls}; 0: no check)")
    g.add_argument("--list-end", choices=("model", "grammar"), default=d.list_end,
                   help="at a call boundary: the model's own next token decides whether the list ends (model, the "
                        "default), or the grammar's mask does (grammar)")
    g.add_argument("--allow-answered-calls", action="store_true",
                   help="do not refuse a call identical to one whose result the conversation already holds")
    g.add_argument("--allow-ungrounded-calls", action="store_true",
                   help="do not refuse a call none of whose values the conversation mentions, with a required value "
                        "nobody gave, or repeating an earlier call with only unnamed values changed")
    g.add_argument("--no-grammar", action="store_true",
                   help="free generation without the tool-call grammar (no validity guarantee)")
    g.add_argument("--date-string", help='pin the "Today Date" of the Llama 3.2 template, e.g. "26 Jul 2024"')
    g.add_argument("--prefix-cache-dir", help="keep evaluated tool prefixes (KV snapshots) here, so the next "
                   "process with the same model and tools skips evaluating them (default: prefix-cache/ in the "
                   "ondevice cache directory; ondevice only touches its own ondevice-kv-* files there)")
    g.add_argument("--no-prefix-cache", action="store_true", help="do not read or write the on-disk prefix cache")
    g.add_argument("--chat-template", help="a Jinja chat template file to use instead of the model's own")
    g.add_argument("--no-call", choices=["list", "text", "threshold"], default=None,
                   help="an answer without a call: list (the format's empty list), text (the model may answer "
                        "with a sentence), threshold (P(sentence) at the first token decides); default: the model's")
    from ..formats import format_names, get_format  # the registry: built-in formats and plugins

    g.add_argument("--tool-format", choices=format_names(), default=None,
                   help="how calls are prompted and written: " + "; ".join(
                       f"{name} ({get_format(name).summary})" if get_format(name).summary else name
                       for name in format_names()) + "; default: the model's")
    g.add_argument("--reasoning", choices=["on", "off"], default=None,
                   help="for a reasoning model (a chat template with a thinking block, as Qwen3's): on opens the "
                        "answer with a thought, decoded free, then the calls under the grammar; off uses the "
                        "template's own switch (enable_thinking); default: on")
    g.add_argument("--reasoning-budget", type=int, default=1024, metavar="N",
                   help="the thought's most tokens; at N its end is forced and the calls follow (default: 1024)")
    g.add_argument("--no-call-threshold", type=float, default=None,
                   help="with --no-call threshold: take the sentence when its probability is at least this")
    # SUPPRESS: `ondevice --verbose call ...` (the top-level flag) is not reset by this one's default.
    g.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS,
                   help="show llama.cpp's log and the engine's state in error messages")


def add_tool_choice_options(parser: argparse.ArgumentParser) -> None:
    """--tool-choice and --no-parallel-tool-calls, as OpenAI's tool_choice and parallel_tool_calls."""
    parser.add_argument("--tool-choice", default="auto",
                        help="auto (zero or more calls), required (at least one), none (no call), or a tool "
                             "name (only that tool, at least one call); default auto")
    parser.add_argument("--no-parallel-tool-calls", action="store_true", help="at most one call")


def call_options(choice: str, parallel: bool, names: list[str]) -> CallOptions:
    """--tool-choice and --no-parallel-tool-calls as grammar options (`names`: the tools')."""
    max_calls = None if parallel else 1
    if choice == "auto":
        return CallOptions(max_calls=max_calls)
    if choice == "none":
        return CallOptions(max_calls=0)
    if choice == "required":
        return CallOptions(min_calls=1, max_calls=max_calls)
    if choice not in names:
        raise ToolChoiceError(f"--tool-choice: expected auto, required, none or a tool name among {names}, got {choice!r}")
    return CallOptions(min_calls=1, max_calls=max_calls, allowed=(choice,))


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
        no_call=args.no_call,
        no_call_threshold=args.no_call_threshold,
        tool_format=args.tool_format,
        reasoning=args.reasoning,
        reasoning_budget=args.reasoning_budget,
        verbose=bool(getattr(args, "verbose", False)),
        max_calls=args.max_calls,
        max_identical_calls=args.max_identical_calls,
        list_end=args.list_end,
        refuse_answered_calls=not args.allow_answered_calls,
        refuse_ungrounded_calls=not args.allow_ungrounded_calls,
        repack=args.repack,
    )


def read_text(source: str, what: str, error: type[OndeviceError], hint: str,
              limit: Optional[int] = None) -> tuple[str, str]:
    """(text, where) of a UTF-8 file, or of stdin for '-'; `error` (saying `hint`) when it cannot be read,
    an InputLimitError when it holds more than `limit` bytes (setting max_body_bytes)."""
    size = -1 if limit is None else limit + 1
    try:
        if source == "-":
            data, where = sys.stdin.buffer.read(size), "stdin"
        else:
            path = Path(source)  # any readable path: a file, a pipe, <(...), /dev/stdin
            with open(path, "rb") as handle:
                data, where = handle.read(size), str(path)
    except FileNotFoundError:
        raise error(f"{what} not found: {source} ({hint})") from None
    except IsADirectoryError:
        raise error(f"{what} is a directory: {source} ({hint})") from None
    except OSError as exc:
        raise error(f"cannot read {what} {source}: {exc.strerror or exc} ({hint})") from None
    if limit is not None and len(data) > limit:
        raise InputLimitError(f"{where} holds more than {limit} bytes (setting max_body_bytes): "
                              "send less, or raise max_body_bytes")
    try:
        return data.decode("utf-8"), where
    except UnicodeDecodeError as exc:
        raise error(f"{where} is not UTF-8 text: byte {data[exc.start]:#04x} at offset {exc.start} cannot be "
                    "decoded; save it as UTF-8") from None


def read_chat_template(source: Optional[str]) -> Optional[str]:
    """The Jinja source of a --chat-template file; None when not given."""
    if source is None:
        return None
    text, _ = read_text(source, "chat template file", ChatTemplateError, "pass a Jinja file, e.g. the model's chat_template")
    return text


def load_tools(source: Optional[str], settings: Settings) -> Optional[list[Any]]:
    """Tools from a JSON file (a list of tools, or {"tools": [...]}) or '-' for stdin; None when absent.

    At most `settings.max_body_bytes` are read (the tools' own limits are checked by the call).
    """
    if source is None:
        return None
    text, where = read_text(source, "tools file", ToolSchemaError, "pass a JSON file holding a list of tools",
                            limit=settings.max_body_bytes)
    data = parse_json_body(text, settings, f"the tools in {where}")
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    check_tool_limits(data, settings)
    return data
