"""`ondevice bench`: bfcl, speed, quant, report and convert (registered through the `ondevice.commands` entry point).

Only argparse wiring lives here; each benchmark module is imported when its subcommand runs, so a
missing bench-only dependency (bfcl-eval, matplotlib) never breaks `ondevice --help`.
"""

from __future__ import annotations

import argparse
import importlib

from .errors import BenchDependencyError

STANDIN = "smollm2-135m-instruct"

BENCH_EPILOG = """\
examples:
  ondevice bench bfcl --limit 20                 # 20 cases per category, grammar and no grammar
  ondevice bench bfcl                            # the full BFCL set (3,475 cases x 2 modes; hours on 2 cores)
  ondevice bench peers --limit 3                 # ondevice vs llama-cpp-python's tool calling and a lenient parser
  ondevice bench speed                           # 1B-shape random GGUFs, Q4_K_M and Q8_0
  ondevice bench contention                      # one call alone vs two processes at once
  ondevice bench quant                           # KL divergence / top-1 agreement vs F16
  ondevice bench schemas                         # JSONSchemaBench coverage and answer validity
  ondevice bench mcp                             # real MCP servers' toolsets: relaxed keywords, one call each
  ondevice bench report                          # docs/benchmarks.md + PNG plots from bench/results/
  ondevice bench serve                           # ondevice serve at 1, 2, 4, 8 clients (stand-in)
  ondevice bench loop                            # after a tool result: a final answer, or the same call again
  ondevice bench property                        # the property-based tests at 300 cases each
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    pass


def _lazy(module: str, function: str = "run"):
    def call(args: argparse.Namespace) -> int:
        try:
            mod = importlib.import_module(module, __package__)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith(("ondevice", "ondevice_bench", "ondevice_convert")):
                raise BenchDependencyError(
                    f"{exc.name} is missing: install the bench extras: "
                    "pip install matplotlib && pip install --no-deps bfcl-eval==2026.3.23"
                ) from None
            raise
        return getattr(mod, function)(args)  # BfclUnavailable is a BenchDependencyError

    call.targets = ((module, function),)  # type: ignore[attr-defined]  (read by tests/bench/test_cli_modules.py)
    return call


def _bfcl(args: argparse.Namespace) -> int:
    """`bench bfcl`: ondevice's two modes, or with ``--engine`` a peer (llama-cpp-chatml, template-lenient)
    alone, as `bench peers` runs it."""
    if getattr(args, "engine", "ondevice") != "ondevice":
        args.engines = args.engine
        return _lazy(".peers")(args)
    return _lazy(".bfcl")(args)


_bfcl.targets = ((".bfcl", "run"), (".peers", "run"))  # type: ignore[attr-defined]


def _common(p: argparse.ArgumentParser, *, model_default, model_help: str, limit_help: str) -> None:
    p.add_argument("--model", default=model_default, help=model_help)
    p.add_argument("--limit", type=int, default=None, metavar="N", help=limit_help)
    p.add_argument("--seed", type=int, default=0, help="seed of the subsample and of the runtime")
    p.add_argument("--out", default=None, help="where to write the result (default under bench/results/)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser(
        "bench",
        help="benchmarks: BFCL accuracy, speed and memory, quantization quality, report",
        description="Benchmarks, measured the same way each time; results land in bench/results/.",
        epilog=BENCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = bench.add_subparsers(dest="bench_command", metavar="BENCHMARK")
    bench.set_defaults(func=lambda args: (bench.print_help(), 2)[1])

    # --- bfcl ---------------------------------------------------------------------------------
    p = sub.add_parser(
        "bfcl",
        help="BFCL accuracy and format validity, with and without the grammar",
        description=(
            "Berkeley Function Calling Leaderboard (bfcl-eval 2026.3.23, its data and AST checker): "
            "accuracy and format-validity per category, each with and without the grammar, on the same "
            "model and prompts. Greedy decoding."
        ),
        epilog="""\
examples:
  ondevice bench bfcl --limit 20                       # stratified: 20 per category, seed 0 (minutes)
  ondevice bench bfcl --limit 2 --categories simple_python,irrelevance
  ondevice bench bfcl --model ~/models/llama-3.2-1b-apigen-fc.Q4_K_M.gguf
  ondevice bench bfcl --resume                         # continue an interrupted run of the same set
""",
        formatter_class=_Formatter,
    )
    _common(
        p,
        model_default=STANDIN,
        model_help="model: alias, hub repo or .gguf path",
        limit_help="run N cases per category (a stratified subsample, fixed by --seed); default: all",
    )
    p.add_argument("--categories", default="all", help="comma-separated BFCL categories, or 'all'")
    p.add_argument("--engine", choices=["ondevice", "llama-cpp-chatml", "template-lenient"], default="ondevice",
                   help="ondevice, or a peer on the same GGUF: llama-cpp-python's chatml-function-calling, or the "
                        "model's own template with free generation and a lenient parser (see `bench peers`)")
    p.add_argument("--modes", default="grammar,free",
                   help="grammar (constrained, the model's no-call default), free (no grammar), "
                        "grammar:list / grammar:text / grammar:threshold (a no-call setting forced), "
                        "grammar:mask (the list's end left to the mask, repeats and answered calls allowed)")
    p.add_argument("--max-tokens", type=int, default=512, help="token budget with the grammar")
    p.add_argument("--tool-format", choices=["card", "native"], default=None,
                   help="prompt and call layout in every mode: card (the model card's), native (the model's own "
                        "chat template with the tools); default: the model's manifest")
    p.add_argument("--free-max-tokens", type=int, default=256, help="token budget without the grammar")
    p.add_argument("--n-ctx", type=int, default=8192, help="context window (BFCL's largest tool lists need ~7k)")
    p.add_argument("--resume", action="store_true", help="skip cases already in bench/results/raw/ for this set")
    p.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    p.add_argument("--time-budget-min", type=float, default=None, metavar="MIN",
                   help="start no new case after MIN minutes; the summary then covers the finished cases "
                        "(marked partial; cases run round-robin over categories, so each is covered evenly)")
    p.set_defaults(func=_bfcl, _bench_parser=p, _bench_name="bfcl")

    # --- loop ---------------------------------------------------------------------------------
    p = sub.add_parser(
        "loop",
        help="does an agent loop end: after a tool result, a final answer or the same call again",
        description="A query, the model's calls, a tool result for each, then the next turn: a final answer, the "
                    "same call again, or another call; the default refusals against none, paired, same cases.",
        epilog="""examples:
  ondevice bench loop                                  # Qwen2.5-Coder-0.5B, the card's examples + 4 BFCL cases a category
  ondevice bench loop --limit 10                       # 10 BFCL cases a category
""",
        formatter_class=_Formatter,
    )
    _common(p, model_default=None, model_help="a model in the native format (default: qwen2.5-coder-0.5b-instruct)",
            limit_help="BFCL cases per category (simple_python, multiple, live_simple; default 4)")
    p.set_defaults(func=_lazy(".agent_loop"), _bench_parser=p, _bench_name="loop")

    # --- peers --------------------------------------------------------------------------------
    p = sub.add_parser(
        "peers",
        help="ondevice vs llama-cpp-python's tool calling and the model's template + a lenient parser",
        description=(
            "ondevice and its peers on the same GGUF, the same BFCL cases (stratified, fixed seed) and the "
            "same threads, in one run: llama-cpp-python's chatml-function-calling, and the model's own chat "
            "template with free generation and a lenient parser (as llama-server --jinja and Ollama). BFCL "
            "accuracy per category with 95%% intervals, validity, false refusals, extra and repeated calls, "
            "latency p50/p95; ondevice vs each peer paired (exact McNemar) and latency ratios."
        ),
        epilog="""\
examples:
  ondevice bench peers --limit 3 --threads 2          # Qwen2.5-Coder-0.5B, 3 a category, every engine
  ondevice bench peers --limit 20 --time-budget-min 5 --resume
  ondevice bench peers --engines ondevice,llama-cpp-chatml --categories simple_python,irrelevance --limit 2
""",
        formatter_class=_Formatter,
    )
    _common(p, model_default="qwen2.5-coder-0.5b-instruct", model_help="model: alias, hub repo or .gguf path",
            limit_help="N cases per category (stratified, fixed by --seed); default: all")
    p.add_argument("--engines", default="ondevice,llama-cpp-chatml,template-lenient",
                   help="comma-separated engines; the first is compared with each other")
    p.add_argument("--categories", default="all", help="comma-separated BFCL categories, or 'all'")
    p.add_argument("--max-tokens", type=int, default=512, help="token budget of every engine")
    p.add_argument("--n-ctx", type=int, default=8192, help="context window (BFCL's largest tool lists need ~7k)")
    p.add_argument("--resume", action="store_true", help="skip cases already in bench/results/raw/ for this set")
    p.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    p.add_argument("--time-budget-min", type=float, default=None, metavar="MIN",
                   help="start no new case after MIN minutes (continue with --resume)")
    p.set_defaults(func=_lazy(".peers"), _bench_parser=p, _bench_name="peers")

    # --- speed --------------------------------------------------------------------------------
    p = sub.add_parser(
        "speed",
        help="load time, prompt and decode tok/s, warm latency, peak RSS (1B shape)",
        description=(
            "Speed and memory on random-weight GGUFs with the exact Llama-3.2-1B shape and the real Llama 3 "
            "tokenizer: load time, cold prompt evaluation tok/s on the card's examples, warm latency with the "
            "tools prefix cached, decode tok/s with and without the grammar, native llama.cpp decode "
            "(a raw llama_decode loop with llama.cpp's greedy sampler) on the same file, peak RSS. "
            "Each quant type runs in its own process."
        ),
        epilog="""\
examples:
  ondevice bench speed                               # Q4_K_M and Q8_0
  ondevice bench speed --quants Q4_K_M --limit 1     # one example, quick
  ondevice bench speed --model ./my.Q4_K_M.gguf      # any GGUF instead of the random 1B shape
  ondevice bench speed --only-placements --model qwen2.5-coder-0.5b-instruct   # weight placement only
""",
        formatter_class=_Formatter,
    )
    _common(
        p,
        model_default=None,
        model_help="a .gguf to measure instead of the random-weight 1B-shape files",
        limit_help="use only the first N of the card's examples",
    )
    p.add_argument("--quants", default="Q4_K_M,Q8_0", help="quant types of the random 1B-shape GGUF")
    p.add_argument("--decode-tokens", type=int, default=64, help="tokens per decode-speed measurement")
    p.add_argument("--repeats", type=int, default=5,
                   help="repeats per timing, A/B pairs interleaved repeat by repeat (the median is reported)")
    p.add_argument("--bfcl-sample", type=int, default=20, metavar="N",
                   help="BFCL live_simple cases (fixed by --seed) added to the card's examples for speculation on/off")
    p.add_argument("--no-native", action="store_true", help="skip llama.cpp's own decode loop (quick runs)")
    p.add_argument("--no-one-shot", action="store_true",
                   help="skip the one-shot `ondevice call` processes (uncached vs cached, get_weather)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context window")
    p.add_argument("--placements", default="chosen,no-repack,old-default",
                   help="weight placements whose decode speed is compared, each run in its own processes: "
                        "chosen (repack, AMX left out), no-repack, old-default (llama.cpp's whole list; '' skips)")
    p.add_argument("--only-placements", action="store_true", help="measure only the placements (quick runs)")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.set_defaults(func=_lazy(".speed"), _bench_parser=p, _bench_name="speed")

    # --- contention ---------------------------------------------------------------------------
    p = sub.add_parser(
        "contention",
        help="one call alone vs two processes at once, for each way llama.cpp's threads may wait",
        description=(
            "The same constrained call timed alone and in two processes started together (each one's wall "
            "time / the alone median; fair sharing of the cores gives about 2), and the single-process decode "
            "speed, for each way of waiting: the runtime's (GOMP_SPINCOUNT=1000), OMP_WAIT_POLICY=PASSIVE, libgomp's "
            "default, or spin:N (GOMP_SPINCOUNT=N). Fresh processes "
            "for every measurement; a pair running past --timeout is stopped."
        ),
        epilog="""\
examples:
  ondevice bench contention                                   # the stand-in, 384-token budget
  ondevice bench contention --model ~/.cache/ondevice/assets/random-llama-1b.Q4_K_M.gguf --max-tokens 128
  ondevice bench contention --modes runtime --repeats 1       # quick
  ondevice bench contention --modes spin:1000,spin:3000        # other spin counts
""",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", default=STANDIN, help="model: alias, hub repo or .gguf path")
    p.add_argument("--example", default="parallel", help="the card example to call (examples/NAME)")
    p.add_argument("--max-tokens", type=int, default=384, help="token budget of the timed call")
    p.add_argument("--modes", default="runtime,passive,default",
                   help="ways to wait to compare: runtime, passive, default, spin:N (default: runtime,passive,default)")
    p.add_argument("--repeats", type=int, default=3, help="alone runs and pairs per mode")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds before a pair is stopped")
    p.add_argument("--threads", type=int, default=None, help="CPU threads per process (default: all usable cores)")
    p.add_argument("--n-ctx", type=int, default=4096, help="context window")
    p.add_argument("--out", default=None, help="where to write the result (default under bench/results/)")
    p.set_defaults(func=_lazy(".contention"), _bench_parser=p, _bench_name="contention")

    # --- quant --------------------------------------------------------------------------------
    p = sub.add_parser(
        "quant",
        help="quantization quality: KL divergence and top-1 agreement vs F16, file size",
        description=(
            "For the stand-in rebuilt as a full-precision checkpoint and converted to F16 GGUF, each quant "
            "type against F16 on a fixed text set: mean KL divergence of the next-token distributions, "
            "top-1 agreement, file size, decode tok/s."
        ),
        epilog="""\
examples:
  ondevice bench quant
  ondevice bench quant --quants Q8_0,Q4_K_M --limit 4
""",
        formatter_class=_Formatter,
    )
    _common(
        p,
        model_default=STANDIN,
        model_help="the model to rebuild at full precision (the stand-in)",
        limit_help="use only the first N texts of the fixed set",
    )
    p.add_argument("--quants", default="Q8_0,Q6_K,Q5_K_M,Q4_K_M,Q4_0", help="quant types to compare with F16")
    p.add_argument("--n-ctx", type=int, default=2048, help="context window")
    p.set_defaults(func=_lazy(".quant"), _bench_parser=p, _bench_name="quant")

    # --- schemas ------------------------------------------------------------------------------
    p = sub.add_parser(
        "schemas",
        help="schema coverage vs llguidance, and answer validity, on JSONSchemaBench's real-world schemas",
        description=(
            "Per JSONSchemaBench set (../shared/fixtures/jsonschemabench/): how many object schemas llguidance "
            "alone compiles and how many ondevice accepts as tool parameters; then, for a fixed-seed sample of "
            "the accepted ones, a real constrained call whose arguments are validated with jsonschema against "
            "the ORIGINAL schema."
        ),
        epilog="""\
examples:
  ondevice bench schemas                       # 25 sampled calls a set on the stand-in
  ondevice bench schemas --limit 5             # quick
""",
        formatter_class=_Formatter,
    )
    _common(
        p,
        model_default=STANDIN,
        model_help="model: alias, hub repo or .gguf path",
        limit_help="sampled calls per set",
    )
    p.set_defaults(limit=25)
    p.add_argument("--fixtures", default=None, help="the JSONSchemaBench folder (default ../shared/fixtures/jsonschemabench)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature of the calls (seeded)")
    p.add_argument("--max-tokens", type=int, default=512, help="token budget per call")
    p.add_argument("--n-ctx", type=int, default=8192, help="context window")
    p.set_defaults(func=_lazy(".schemas"), _bench_parser=p, _bench_name="schemas")

    # --- turns (what each turn of a tool loop evaluates) ---------------------------------------
    p = sub.add_parser(
        "turns",
        help="a 5-turn tool loop on a 25-tool MCP toolset: tokens evaluated per turn against tokens added",
        description=(
            "Five turns on Playwright's MCP toolset (25 tools): each turn adds the model's call, the tool's result "
            "and the next request, as an agent loop or a server client does. Per turn: prompt tokens, tokens added, "
            "tokens evaluated, time; then each request again on a fresh cache, whose answer must be the same."
        ),
        epilog="""\
examples:
  ondevice bench turns                            # Qwen2.5-Coder-0.5B
  ondevice bench turns --threads 2
""",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", default=None, help="a model spec (default qwen2.5-coder-0.5b-instruct)")
    p.add_argument("--seed", type=int, default=0, help="seed of the runtime")
    p.add_argument("--out", default=None, help="where to write the result (default under bench/results/)")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")
    p.set_defaults(func=_lazy(".turns"), _bench_parser=p, _bench_name="turns")

    # --- nocall (calls nobody asked for) --------------------------------------------------------
    p = sub.add_parser(
        "nocall",
        help="P(no call) and extra calls on BFCL cases outside the judged sample; the no-call threshold chosen there",
        description=(
            "BFCL cases disjoint from the sample `bench peers --limit 20` judges on, answered in the default no-call "
            "mode: the probability of no call at the first token, every call beyond the due ones classified, and "
            "the no-call threshold swept. The threshold chosen is the smallest whose false refusals stay within "
            "--max-refusals of the cases that need a call; a model's manifest may carry it (no_call_threshold)."
        ),
        epilog="""\
examples:
  ondevice bench nocall --threads 2                     # Qwen2.5-Coder-0.5B, 12 a category, 30 per irrelevance category
  ondevice bench nocall --relevant 4 --irrelevant 10    # quick
  ondevice bench nocall --seed 1 --relevant 24 --irrelevant 60 --out bench/results/nocall-qwen-seed1.json
  ondevice bench nocall --rescore bench/results/nocall-qwen2.5-coder-0.5b-instruct.json   # today's check, no model
""",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="model: alias, hub repo or .gguf path")
    p.add_argument("--relevant", type=int, default=12, help="cases of each category that needs a call")
    p.add_argument("--irrelevant", type=int, default=30, help="cases of each irrelevance category")
    p.add_argument("--max-refusals", type=float, default=0.05, help="the false-refusal share the threshold may cost")
    p.add_argument("--seed", type=int, default=0, help="seed of the draw")
    p.add_argument("--max-tokens", type=int, default=512, help="token budget per answer (as bench peers)")
    p.add_argument("--n-ctx", type=int, default=8192, help="context window")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")
    p.add_argument("--out", default=None, help="where to write the result (default bench/results/nocall-MODEL.json)")
    p.add_argument("--rescore", metavar="FILE", default=None,
                   help="recompute what the grounding check does to a stored run's answers (no model; FILE is rewritten)")
    p.set_defaults(func=_lazy(".nocall"), _bench_parser=p, _bench_name="nocall")

    # --- mcp ----------------------------------------------------------------------------------
    p = sub.add_parser(
        "mcp",
        help="real MCP servers' toolsets, whole: accepted, relaxed keywords, one query's call each",
        description=(
            "collect: install each pinned MCP server (npm, PyPI) into the cache, start it over stdio with no "
            "network in a sandbox directory, and write its tools/list to bench/fixtures/mcp/. run: each "
            "collected toolset through ondevice's normalization and grammar (tools accepted, keywords relaxed, "
            "none refused whole), then one query per server with the whole toolset on the model; each call "
            "validated with jsonschema against the tool's schema as the server sent it."
        ),
        epilog="""\
examples:
  ondevice bench mcp collect                     # install and start the servers, write bench/fixtures/mcp/*.json
  ondevice bench mcp run --no-model              # accepted tools and relaxed keywords only (seconds)
  ondevice bench mcp run                         # + one call per server on Qwen2.5-Coder-0.5B (minutes)
  ondevice bench mcp run --servers time,fetch
""",
        formatter_class=_Formatter,
    )
    p.add_argument("action", nargs="?", choices=["collect", "run"], default="run",
                   help="collect the servers' tool lists, or run the benchmark on the collected ones")
    p.add_argument("--servers", default="all", help="comma-separated server names (bench/mcp_servers.py), or 'all'")
    p.add_argument("--fixtures", default=None, help="folder of the tool lists (default bench/fixtures/mcp)")
    p.add_argument("--no-model", action="store_true", help="run: check the toolsets only, load no model")
    p.add_argument("--model", default="qwen2.5-coder-0.5b-instruct", help="model: alias, hub repo or .gguf path")
    p.add_argument("--n-ctx", type=int, default=32768, help="context window (Notion's toolset takes ~22k tokens)")
    p.add_argument("--max-tokens", type=int, default=512, help="token budget per call")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all usable cores)")
    p.add_argument("--out", default=None, help="where to write the result (default bench/results/mcp-servers.json)")
    p.set_defaults(func=_lazy(".mcp_servers"), _bench_parser=p, _bench_name="mcp")

    # --- serve --------------------------------------------------------------------------------
    p = sub.add_parser(
        "serve",
        help="ondevice serve: requests/s and p50/p95 latency at 1, 2, 4, 8 concurrent clients",
        description=(
            "Starts `ondevice serve` on a free loopback port and sends the card's examples from N concurrent "
            "clients (threads, one HTTP connection each): requests/s, tool calls/s, p50/p95 latency and errors "
            "per client count, and the 4-client / 1-client throughput ratio."
        ),
        epilog="""\
examples:
  ondevice bench serve                                  # the stand-in, 1,2,4,8 clients
  ondevice bench serve --shape 1b                       # the random-weight Llama-3.2-1B shape, Q4_K_M
  ondevice bench serve --clients 1,4 --requests 4       # quick
""",
        formatter_class=_Formatter,
    )
    p.add_argument("--model", default=None, help="a model spec (alias, .gguf, hub repo) instead of --shape")
    p.add_argument("--shape", choices=["standin", "1b"], default="standin",
                   help="standin: SmolLM2-135M; 1b: random weights of the Llama-3.2-1B shape (built once, cached)")
    p.add_argument("--clients", default="1,2,4,8", help="comma-separated client counts")
    p.add_argument("--requests", type=int, default=12, help="requests per client at each client count")
    p.add_argument("--max-tokens", type=int, default=64, help="token budget per answer")
    p.add_argument("--n-ctx", type=int, default=4096, help="context window")
    p.add_argument("--threads", type=int, default=None, help="CPU threads of the server (default: all usable cores)")
    p.add_argument("--parallel", type=int, default=None,
                   help="the server's --parallel: requests decoded together (default: the server's default, 4)")
    p.add_argument("--batching", choices=("invariant", "shared"), default=None,
                   help="the server's --batching (default: the server's default, invariant)")
    p.add_argument("--out", default=None, help="where to write the result (default bench/results/serve-MODEL.json)")
    p.set_defaults(func=_lazy(".serve"), _bench_parser=p, _bench_name="serve")

    # --- report -------------------------------------------------------------------------------
    p = sub.add_parser(
        "report",
        help="markdown report and PNG plots from bench/results/",
        description="Write docs/benchmarks.md and PNG plots (docs/img/) from the JSON results in bench/results/.",
        epilog="""\
examples:
  ondevice bench report
  ondevice bench report --results bench/results --out docs
""",
        formatter_class=_Formatter,
    )
    p.add_argument("--results", default=None, help="folder of result JSON files (default bench/results)")
    p.add_argument("--out", default=None, help="output folder (default docs/)")
    p.add_argument("--bfcl", default=None, help="the BFCL result to report (default: the full run, else the largest)")
    p.set_defaults(func=_lazy(".report"), _bench_parser=p, _bench_name="report")

    # --- property (the property-based tests at full count) ---------------------------------------
    p = sub.add_parser(
        "property",
        help="the property-based tests at their full count of cases (before a release)",
        description="Run tests/grammar/test_property.py and tests/cli/test_cli_fuzz.py from the source checkout "
                    "with ONDEVICE_PROPERTY_EXAMPLES cases (the default test run uses 20).",
        epilog="""\
examples:
  ondevice bench property                        # 300 cases each (about 15 minutes on 2 cores)
  ondevice bench property --examples 1000
""",
        formatter_class=_Formatter,
    )
    p.add_argument("--examples", type=int, default=300, help="cases per property test")
    p.set_defaults(func=_lazy(".property"), _bench_parser=p, _bench_name="property")

    # --- convert (the converter's benchmark) ---------------------------------------------------
    from . import convert_bench

    convert_bench.register(sub)
