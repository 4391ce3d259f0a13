"""One settings object for loading and decoding, passed everywhere instead of loose kwargs."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, fields, make_dataclass, replace
from typing import Any, Callable, Optional

from .errors import SettingsError


INT32_MAX = 2**31 - 1
UINT32_MAX = 2**32 - 1
# llama.cpp stores n_ctx in a uint32 and sizes the KV cache from it; no model we run was trained on
# more than 128k tokens, and a larger value only fails later (allocating the cache), so stop here.
MAX_N_CTX = 1 << 20
MAX_N_BATCH = 1 << 16
MAX_THREADS = 512  # GGML_MAX_N_THREADS
MAX_PARALLEL = 64  # sequences of one context (LLAMA_MAX_SEQ is 256)
MAX_TEMPERATURE = 100.0  # beyond this every allowed token is equally likely anyway
MAX_CACHE_MB = 1 << 30
# Real-world tool schemas nest far less (JSONSchemaBench's deepest: 27 levels); deeper input would only
# exhaust Python's or the grammar compiler's stack.
MAX_SCHEMA_DEPTH = 100

# The built-in tool formats (ondevice.formats implements them). A setting names a format before the
# formats load, so the names a setting may give live here; formats.register adds a new one.
CARD, NATIVE, LLAMA3, XLAM, PHI4_MINI, MISTRAL = "card", "native", "llama3", "xlam", "phi4-mini", "mistral"
MINISTRAL3, PYTHONIC, FUNCTIONGEMMA = "ministral-3", "pythonic", "functiongemma"
_TOOL_FORMATS: list[str] = [CARD, NATIVE, LLAMA3, XLAM, PHI4_MINI, MISTRAL, MINISTRAL3, PYTHONIC, FUNCTIONGEMMA]


_format_plugins: list[Callable[[], None]] = []  # formats.registry's entry-point loader, set at its import


def tool_format_names() -> list[str]:
    """The names the setting tool_format may take: the built-in formats', then those registered
    (by `formats.register`, or by another package through the ``ondevice.formats`` entry points)."""
    for load in _format_plugins:
        load()
    return list(_TOOL_FORMATS)


def add_format_loader(load: Callable[[], None]) -> None:
    """Have `tool_format_names` call `load` first (formats.registry's entry-point loader: a setting
    may name a format another package provides)."""
    _format_plugins.append(load)


def add_tool_format_name(name: str) -> None:
    """Let the setting tool_format take `name` (called by `formats.register`)."""
    if name not in _TOOL_FORMATS:
        _TOOL_FORMATS.append(name)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_utf8(text: str) -> bool:
    """False for strings holding lone surrogates (undecodable bytes from argv, files or JSON escapes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True)
class Settings:
    """How to load the model and decode.

    n_ctx: context window in tokens. n_threads: CPU threads (None: all cores). n_gpu_layers: layers
    to offload to Metal/CUDA when llama-cpp-python was built with it (0: CPU only, -1: all).
    temperature: 0 is greedy (the default, reproducible); above 0 samples with `seed` and `top_p`.
    max_tokens: the budget of generated tokens per call. constrained: decode under the tool-call
    grammar (False: free generation, for comparisons). fast_forward: append the tokens the grammar
    forces without sampling them (False: sample every token, for comparisons). speculate: draft
    the next tokens from the query and history text and verify them in the same llama_decode (prompt
    lookup; the output is unchanged, only decode steps are saved). date_string: pins the "Today Date" line of
    Llama 3.2's chat template. prefix_cache_entries / prefix_cache_mb: how many evaluated tool
    prefixes (KV snapshots) to keep in RAM, least recently used evicted first; prefix_cache_dir also
    keeps them on disk, so that a new process skips evaluating a known tools prefix. chat_template: Jinja
    source to use instead of the GGUF's own template. prefix_cache_disk_mb: the bound on the
    snapshots kept in prefix_cache_dir (all models together; least recently used removed first).
    verbose: llama.cpp's log and llguidance's grammar diagnostics go to stderr (errors always keep
    the engine's state, parser dumps and log tails, in `details`, out of the message).
    max_calls: the most calls in one answer (enforced by the grammar; 0: no bound).
    max_identical_calls: the most times one call (name and arguments) may appear in an answer; the
    next identical one ends the list, dropped (0: no check). The default 1 never sends a call twice
    (a message sent twice, or a runaway list repeating A, B, A, B); it costs BFCL's one ground truth
    with two identical calls (parallel_158).
    refuse_answered_calls: a call identical to one whose result the conversation already holds ends
    the list (dropped); when it is the first call and a sentence may stand (no_call "text" or
    "threshold"), the answer is a sentence instead. refuse_ungrounded_calls: where calls are optional,
    a call none of whose string or number values the conversation mentions, or one with a required
    open argument (no enum, not a boolean, not its default) whose value nobody gave (a made-up call:
    "Who won yesterday?" answered with a stock-price call for a date the model invented), or an
    earlier call of the answer again with only values changed that nobody named, is refused
    as an answered one is: the first call becomes a sentence (or, with no_call "list", the empty
    list), a later one ends the list (engine/grounding.py; chosen on BFCL cases disjoint from the
    judged sample, docs/benchmarks.md). list_end: at a call boundary, "model" ends the
    list when the model's own (unconstrained) next token is neither another call nor the end the
    grammar allows; "grammar" leaves the choice to the mask (for comparisons).
    no_call: how an answer without a call is
    produced under the grammar: "list" (``<tool_call>[]</tool_call>``), "text" (the model may answer
    with a sentence instead, returned as ``calls == []`` and ``message``), "threshold" (as "text",
    but the first token's probability of a sentence, at least `no_call_threshold`, decides); None
    takes the model's default: its manifest's, else its format's ("list" for the card's, "text" for a
    model's own template format); a tool_format other than the model's brings that format's default.
    tool_format: how calls are prompted and laid out: "card" (the model card's system prompt and user
    template, one ``<tool_call>[...]</tool_call>`` list), "native" (the model's own chat template
    rendered with the tools, one ``<tool_call>\n{...}\n</tool_call>`` block per call, as Qwen2.5
    and other Hermes-style models are trained); None takes the model's manifest default ("card"
    for a model without one).
    reasoning: for a model whose chat template has a thinking block (Qwen3, the DeepSeek-R1
    distills): "on" opens each answer with a thought, decoded without the grammar and returned as
    ``result.reasoning``, the calls decoded under the grammar after it; "off" renders the template's
    own switch (Qwen3's ``enable_thinking``: an empty thought) and decodes no thought; None is "on".
    Models without a thinking block ignore it. reasoning_budget: the thought's most tokens (markers
    included); at the budget its end marker is forced and the answer follows (within max_tokens).
    n_parallel: sequences in the context (load time): 1 for `ToolCaller.call`; N > 1 lets the
    engine decode N requests together (`ondevice serve --parallel`), the KV cache then holding
    N x n_ctx cells (each request still bounded by n_ctx). batching (load time): "invariant" (each
    request's tokens in a llama_decode of its own, so an answer equals the same request alone) or
    "shared" (one llama_decode for all: faster where memory traffic dominates; see engine/engine.py).
    repack: let llama.cpp copy the quantized weights into its interleaved CPU layout at load (its
    CPU_REPACK buffers; load time). Measured on the 1B shape, Q4_K_M, 2 cores (`ondevice bench
    speed`): decode about 12% faster, but loading takes 0.5 s more and 450 MiB more memory (and
    prompt evaluation was slower on the AMD host). So long-lived processes (the Python API,
    `ondevice serve`, `ondevice chat`) keep it on, and the one-shot `ondevice call` turns it off. Its AMX
    buffer type (Intel Sapphire Rapids and later) is always left out: its decode segfaults (engine/hardware.py;
    ONDEVICE_AMX=1 opts back in).

    Every value is checked here, before a model loads; the upper bounds are those of the C side
    (32-bit fields) or, for n_ctx, a bound no GGUF we run reaches (the model's own n_ctx_train is
    checked at load).

    Limits on untrusted input (each refused with an `InputLimitError` that names the setting):
    max_tools: tools per call. max_tools_bytes: the tools list as JSON. max_schema_depth: nesting of
    JSON objects/arrays in one tool. max_body_bytes: a JSON document read from outside (the CLI's
    tools file or stdin, the server's request body). grammar_compile_fuel / grammar_step_fuel /
    grammar_max_size: llguidance's budget to build a tool's grammar (lexer fuel, ~50k a ms), to
    compute one token's mask (~14k a ms), and its size in symbols; a tool over them is refused by name.
    The query and history are bounded by the context (n_ctx tokens).

    Fields in LOAD_TIME_FIELDS are fixed when the model loads (`ToolCaller.load`); the others
    (PER_CALL_FIELDS) may change for one call (`call(..., settings=caller.settings.with_(...))`).
    A per-call settings object whose load-time fields differ from the loaded ones is a SettingsError.
    """

    n_ctx: int = 4096
    n_threads: Optional[int] = None
    n_batch: int = 512
    n_gpu_layers: int = 0
    seed: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int = 512
    constrained: bool = True
    fast_forward: bool = True
    speculate: bool = True
    date_string: Optional[str] = None
    prefix_cache_entries: int = 8
    prefix_cache_mb: int = 512
    prefix_cache_dir: Optional[str] = None
    prefix_cache_disk_mb: int = 2048
    chat_template: Optional[str] = None
    no_call: Optional[str] = None
    no_call_threshold: Optional[float] = None
    tool_format: Optional[str] = None
    reasoning: Optional[str] = None
    reasoning_budget: int = 1024
    verbose: bool = False
    max_tools: int = 256
    max_tools_bytes: int = 1 << 20
    max_schema_depth: int = 64
    max_body_bytes: int = 8 << 20
    grammar_compile_fuel: int = 1_000_000
    grammar_step_fuel: int = 200_000
    grammar_max_size: int = 500_000
    max_calls: int = 16
    max_identical_calls: int = 1
    refuse_answered_calls: bool = True
    refuse_ungrounded_calls: bool = True
    list_end: str = "model"
    n_parallel: int = 1
    batching: str = "invariant"
    repack: bool = True

    def __post_init__(self) -> None:
        for f in fields(self):
            check_setting(f.name, getattr(self, f.name))
        load = LoadSettings(**{name: getattr(self, name) for name in LOAD_TIME_FIELDS})
        object.__setattr__(self, "_load", load)

    @property
    def load(self) -> "LoadSettings":
        """The settings fixed when the model loads (what `LlamaModel` takes)."""
        return self._load  # type: ignore[attr-defined]

    @property
    def threads(self) -> int:
        """The CPU threads to use: n_threads, else every core."""
        return self.load.threads

    def check_per_call(self, per_call: "Settings") -> None:
        """Raise SettingsError when `per_call` changes a field fixed at load (these are the loaded settings)."""
        changed = [f"{name}: loaded with {getattr(self, name)!r}, got {getattr(per_call, name)!r}"
                   for name in sorted(LOAD_TIME_FIELDS) if getattr(self, name) != getattr(per_call, name)]
        if changed:
            raise SettingsError(
                f"load-time settings cannot change per call ({'; '.join(changed)}): load the model again with them; "
                f"per call only {', '.join(sorted(PER_CALL_FIELDS))} may change"
            )

    def with_(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SettingsError(f"unknown settings {unknown}; known: {sorted(known)}")
        return replace(self, **changes)


@dataclass(frozen=True)
class Rule:
    """What values one setting takes, and when it is fixed (`lifetime`: "load", "decode", "limits",
    "server"). `kind`: "int", "float", "bool", "choice" or "text"; `optional`: None is allowed too."""

    lifetime: str
    kind: str
    expected: str
    low: Any = None
    high: Any = None
    choices: tuple[str, ...] = ()
    optional: bool = False
    low_open: bool = False  # low itself is not allowed


def _int(lifetime: str, low: int, high: int, expected: str = "", optional: bool = False) -> Rule:
    return Rule(lifetime, "int", expected or (f"an integer from {low} to {high}" if high < INT32_MAX
                                              else f"an integer >= {low}"), low, high, optional=optional)


# Every setting, once: its lifetime and its bounds (the upper bounds are those of the C side, 32-bit
# fields, or for n_ctx a bound no GGUF we run reaches; the model's own n_ctx_train is checked at load).
RULES: dict[str, Rule] = {
    "n_ctx": _int("load", 64, MAX_N_CTX),
    "n_threads": _int("load", 1, MAX_THREADS, f"None or an integer from 1 to {MAX_THREADS}", optional=True),
    "n_batch": _int("load", 1, MAX_N_BATCH),
    "n_gpu_layers": _int("load", -1, INT32_MAX, "-1 (all), 0 (CPU) or a layer count"),
    "prefix_cache_entries": _int("load", 0, INT32_MAX),
    "prefix_cache_mb": _int("load", 0, MAX_CACHE_MB),
    "prefix_cache_dir": Rule("load", "text", "None or a string", optional=True),
    "prefix_cache_disk_mb": _int("load", 0, MAX_CACHE_MB),
    "chat_template": Rule("load", "text", "None or a string", optional=True),
    "n_parallel": _int("load", 1, MAX_PARALLEL),
    "batching": Rule("load", "choice", "'invariant' or 'shared'", choices=("invariant", "shared")),
    "repack": Rule("load", "bool", "True or False"),
    "verbose": Rule("load", "bool", "True or False"),
    "seed": _int("decode", 0, UINT32_MAX, f"an integer from 0 to {UINT32_MAX}"),
    "temperature": Rule("decode", "float", f"a number from 0 to {MAX_TEMPERATURE} (0 is greedy)", 0, MAX_TEMPERATURE),
    "top_p": Rule("decode", "float", "a number in (0, 1]", 0, 1, low_open=True),
    "max_tokens": _int("decode", 1, INT32_MAX, f"an integer from 1 to {INT32_MAX}"),
    "constrained": Rule("decode", "bool", "True or False"),
    "fast_forward": Rule("decode", "bool", "True or False"),
    "speculate": Rule("decode", "bool", "True or False"),
    "date_string": Rule("decode", "text", "None or a string", optional=True),
    "no_call": Rule("decode", "choice", "None, 'list', 'text' or 'threshold'", choices=("list", "text", "threshold"),
                    optional=True),
    "no_call_threshold": Rule("decode", "float", "None or a probability in [0, 1]", 0, 1, optional=True),
    "tool_format": Rule("decode", "format", "None or one of the registered formats", optional=True),
    "reasoning": Rule("decode", "choice", "None, 'on' or 'off'", choices=("on", "off"), optional=True),
    "reasoning_budget": _int("decode", 0, INT32_MAX, "an integer >= 0 (0: the thought is closed at once)"),
    "max_calls": _int("decode", 0, INT32_MAX, "an integer >= 0 (0: no bound)"),
    "max_identical_calls": _int("decode", 0, INT32_MAX, "an integer >= 0 (0: no check)"),
    "refuse_answered_calls": Rule("decode", "bool", "True or False"),
    "refuse_ungrounded_calls": Rule("decode", "bool", "True or False"),
    "list_end": Rule("decode", "choice", "'model' or 'grammar'", choices=("model", "grammar")),
    "max_tools": _int("limits", 1, INT32_MAX),
    "max_tools_bytes": _int("limits", 2, INT32_MAX),
    "max_schema_depth": _int("limits", 2, MAX_SCHEMA_DEPTH),
    "grammar_compile_fuel": _int("limits", 1, INT32_MAX),
    "grammar_step_fuel": _int("limits", 1, INT32_MAX),
    "grammar_max_size": _int("limits", 1, INT32_MAX),
    "max_body_bytes": _int("server", 2, INT32_MAX),
}


def check_setting(name: str, value: Any) -> None:
    """A SettingsError naming the setting and what it takes when `value` is not allowed by its rule."""
    rule = RULES[name]
    if value is None and rule.optional:
        return
    ok = True
    if rule.kind == "int":
        ok = _is_int(value) and rule.low <= value <= rule.high
    elif rule.kind == "float":
        ok = (_is_number(value) and math.isfinite(value) and rule.low <= value <= rule.high
              and not (rule.low_open and value == rule.low))
    elif rule.kind == "bool":
        ok = isinstance(value, bool)
    elif rule.kind == "choice":
        ok = value in rule.choices
    elif rule.kind == "format":
        if value not in _TOOL_FORMATS and value not in tool_format_names():
            raise SettingsError(f"setting {name}: expected None or one of {tool_format_names()}, got {value!r}")
    elif rule.kind == "text":
        if not isinstance(value, (str, os.PathLike)):
            raise SettingsError(f"setting {name}: expected {rule.expected}, got {type(value).__name__}")
        if isinstance(value, str) and not is_utf8(value):
            raise SettingsError(f"setting {name}: expected UTF-8 text, got {value!r} (undecodable bytes)")
    if not ok:
        raise SettingsError(f"setting {name}: expected {rule.expected}, got {value!r}")


if set(RULES) != {f.name for f in fields(Settings)}:  # every setting has exactly one rule
    raise AssertionError(f"settings without a rule: {sorted({f.name for f in fields(Settings)} ^ set(RULES))}")

# Fixed when the model loads; the others may change for one call.
LOAD_TIME_FIELDS = frozenset(f.name for f in fields(Settings) if RULES[f.name].lifetime == "load")
PER_CALL_FIELDS = frozenset(f.name for f in fields(Settings)) - LOAD_TIME_FIELDS

LoadSettings = make_dataclass(
    "LoadSettings", [(f.name, f.type, field(default=f.default)) for f in fields(Settings) if f.name in LOAD_TIME_FIELDS],
    frozen=True, namespace={"threads": property(lambda self: self.n_threads or max(1, os.cpu_count() or 1))})
LoadSettings.__doc__ = "The settings fixed when a model loads (values checked by `Settings`): what `LlamaModel` takes."
LoadSettings.__module__ = __name__
