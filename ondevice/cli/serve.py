"""`ondevice serve`: an OpenAI- and Anthropic-compatible server (needs the `serve` extra)."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from ..api import ToolCaller
from ..errors import OndeviceError
from ..server.response_store import DEFAULT_MAX_BYTES, DEFAULT_MAX_RESPONSES
from ..settings import MAX_PARALLEL

DEFAULT_PARALLEL = 4
from .options import add_model_options, settings_from_args

EXAMPLES = """\
examples:
  ondevice serve                                        # http://127.0.0.1:8000/v1, the default model
  ondevice serve --port 8080 --model smollm2-135m-instruct --api-key secret
  ondevice serve --host 0.0.0.0 --api-key "$KEY"        # reachable from other machines: set a key

Endpoints: POST /v1/chat/completions (tools, tool_choice, parallel_tool_calls, stream), POST /v1/responses
(stored in memory: previous_response_id, GET and DELETE /v1/responses/ID), POST /v1/messages and
/v1/messages/count_tokens (Anthropic's Messages API), GET /v1/models, GET /health.
Prints one line "ondevice: serving MODEL on http://HOST:PORT/v1" when ready; SIGINT or SIGTERM stops it
(in-flight requests get a few seconds to finish). --port 0 picks a free port.
--parallel N (default 4) decodes up to N requests together, each in its own sequence (every model and
every no_call mode); 1: one at a time. --batching invariant (default) keeps each answer equal to the same
request alone; shared puts every request's tokens in one llama_decode (faster on a GPU, see docs/server.md).
"""


class ServeExtraMissing(OndeviceError, RuntimeError):
    """starlette/uvicorn are not installed."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible local server (chat completions with tool calls)",
                       description=__doc__, epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0: a free port)")
    p.add_argument("--api-key", default=os.environ.get("ONDEVICE_API_KEY"),
                   help="require 'Authorization: Bearer KEY' on /v1 (or 'x-api-key: KEY' on /v1/messages; default: $ONDEVICE_API_KEY; "
                        "none: open)")
    p.add_argument("--max-queue", type=int, default=64, help="requests that may wait for the model (more: 503)")
    p.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL,
                   help=f"requests decoded together, each in its own sequence (default {DEFAULT_PARALLEL}; 1: one at a "
                        "time; the KV cache holds parallel x n_ctx cells)")
    p.add_argument("--batching", choices=("invariant", "shared"), default="invariant",
                   help="invariant (default): each request's tokens in a llama_decode of their own, every answer "
                        "equal to the request alone; shared: one llama_decode for all (faster where memory "
                        "bandwidth dominates, answers may differ in a near tie)")
    p.add_argument("--responses-store", type=int, default=DEFAULT_MAX_RESPONSES, metavar="N",
                   help=f"Responses API: keep the last N responses in memory for previous_response_id and GET "
                        f"(default {DEFAULT_MAX_RESPONSES}; 0: store none); least recently used evicted first")
    p.add_argument("--responses-store-bytes", type=byte_size, default=DEFAULT_MAX_BYTES, metavar="B",
                   help=f"... and at most B bytes of them (default {DEFAULT_MAX_BYTES // 2 ** 20}M; K, M, G suffixes)")
    add_model_options(p)
    p.set_defaults(func=run)


def byte_size(text: str) -> int:
    """A byte count: digits, with an optional K, M or G (binary) suffix."""
    scale = {"K": 2 ** 10, "M": 2 ** 20, "G": 2 ** 30}.get(text[-1:].upper(), 1)
    digits = text[:-1] if scale > 1 else text
    if not digits.isdigit():
        raise argparse.ArgumentTypeError(f"expected a byte count such as 1048576 or 64M, got {text!r}")
    return int(digits) * scale


def run(args: argparse.Namespace) -> int:
    try:
        app = importlib.import_module("ondevice.server.app")
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.split(".")[0] in ("starlette", "uvicorn", "anyio", "h11"):
            raise ServeExtraMissing(f"ondevice serve needs {exc.name.split('.')[0]} (the serve extra): "
                                    "pip install 'ondevice[serve]'") from None
        raise
    if args.no_grammar:
        raise OndeviceError("ondevice serve always decodes under the tool-call grammar: drop --no-grammar")
    if not 0 <= args.port <= 65535:
        raise OndeviceError(f"--port: expected 0..65535, got {args.port}")
    if args.max_queue < 1:
        raise OndeviceError(f"--max-queue: expected an integer >= 1, got {args.max_queue}")
    if not 1 <= args.parallel <= MAX_PARALLEL:
        raise OndeviceError(f"--parallel: expected an integer from 1 to {MAX_PARALLEL}, got {args.parallel}")
    if args.responses_store < 0:
        raise OndeviceError(f"--responses-store: expected an integer >= 0, got {args.responses_store}")
    caller = ToolCaller.load(args.model, settings_from_args(args).with_(n_parallel=args.parallel,
                                                                        batching=args.batching))
    if caller.resolved is not None and caller.resolved.note:
        print(caller.resolved.note, file=sys.stderr)
    model_id = (caller.resolved.alias if caller.resolved is not None and caller.resolved.alias
                else caller.model.path.stem)
    with caller:
        app.serve(caller, model_id, args.host, args.port, args.api_key, args.max_queue,
                  store=app.ResponseStore(args.responses_store, args.responses_store_bytes))
    return 0
