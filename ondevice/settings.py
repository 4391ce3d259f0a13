"""One settings object for loading and decoding, passed everywhere instead of loose kwargs."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

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
    max_identical_calls: the most identical calls back to back; the next identical one ends the list,
    dropped (0: no check). The default 2 keeps BFCL's one ground truth with two identical calls in a
    row (parallel_158) and stops a model that repeats itself.
    no_call: how an answer without a call is
    produced under the grammar: "list" (``<tool_call>[]</tool_call>``), "text" (the model may answer
    with a sentence instead, returned as ``calls == []`` and ``message``), "threshold" (as "text",
    but the first token's probability of a sentence, at least `no_call_threshold`, decides); None
    takes the model's default from its manifest ("list" for a model without one).
    tool_format: how calls are prompted and laid out: "card" (the model card's system prompt and user
    template, one ``<tool_call>[...]</tool_call>`` list), "native" (the model's own chat template
    rendered with the tools, one ``<tool_call>\n{...}\n</tool_call>`` block per call, as Qwen2.5
    and other Hermes-style models are trained); None takes the model's manifest default ("card"
    for a model without one).
    n_parallel: sequences in the context (load time): 1 for `ToolCaller.call`; N > 1 lets
    batch.py decode N requests in one llama_decode (`ondevice serve --parallel`), the KV cache
    then holding N x n_ctx cells (each request still bounded by n_ctx).
    repack: let llama.cpp copy the quantized weights into its interleaved CPU layout at load (its
    CPU_REPACK buffers; load time). Measured on the 1B shape, Q4_K_M, 2 cores (`ondevice bench
    speed`): decode about 12% faster, but loading takes 0.5 s more and 450 MiB more memory (and
    prompt evaluation was slower on the AMD host). So long-lived processes (the Python API,
    `ondevice serve`, `ondevice chat`) keep it on, and the one-shot `ondevice call` turns it off. Its AMX
    buffer type (Intel Sapphire Rapids and later) is always left out: its decode segfaults (hardware.py;
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
    verbose: bool = False
    max_tools: int = 256
    max_tools_bytes: int = 1 << 20
    max_schema_depth: int = 64
    max_body_bytes: int = 8 << 20
    grammar_compile_fuel: int = 1_000_000
    grammar_step_fuel: int = 200_000
    grammar_max_size: int = 500_000
    max_calls: int = 16
    max_identical_calls: int = 2
    n_parallel: int = 1
    repack: bool = True

    def __post_init__(self) -> None:
        ints = [  # name, low, high, what to pass
            ("n_ctx", 64, MAX_N_CTX, f"an integer from 64 to {MAX_N_CTX}"),
            ("n_batch", 1, MAX_N_BATCH, f"an integer from 1 to {MAX_N_BATCH}"),
            ("n_gpu_layers", -1, INT32_MAX, "-1 (all), 0 (CPU) or a layer count"),
            ("seed", 0, UINT32_MAX, f"an integer from 0 to {UINT32_MAX}"),
            ("max_tokens", 1, INT32_MAX, f"an integer from 1 to {INT32_MAX}"),
            ("prefix_cache_entries", 0, INT32_MAX, "an integer >= 0"),
            ("prefix_cache_mb", 0, MAX_CACHE_MB, f"an integer from 0 to {MAX_CACHE_MB}"),
            ("prefix_cache_disk_mb", 0, MAX_CACHE_MB, f"an integer from 0 to {MAX_CACHE_MB}"),
            ("max_tools", 1, INT32_MAX, "an integer >= 1"),
            ("max_tools_bytes", 2, INT32_MAX, "an integer >= 2"),
            ("max_schema_depth", 2, MAX_SCHEMA_DEPTH, f"an integer from 2 to {MAX_SCHEMA_DEPTH}"),
            ("max_body_bytes", 2, INT32_MAX, "an integer >= 2"),
            ("grammar_compile_fuel", 1, INT32_MAX, "an integer >= 1"),
            ("grammar_step_fuel", 1, INT32_MAX, "an integer >= 1"),
            ("grammar_max_size", 1, INT32_MAX, "an integer >= 1"),
            ("max_calls", 0, INT32_MAX, "an integer >= 0 (0: no bound)"),
            ("max_identical_calls", 0, INT32_MAX, "an integer >= 0 (0: no check)"),
            ("n_parallel", 1, MAX_PARALLEL, f"an integer from 1 to {MAX_PARALLEL}"),
        ]
        if self.n_threads is not None:
            ints.append(("n_threads", 1, MAX_THREADS, f"None or an integer from 1 to {MAX_THREADS}"))
        for name, low, high, expected in ints:
            value = getattr(self, name)
            if not _is_int(value) or not low <= value <= high:
                raise SettingsError(f"setting {name}: expected {expected}, got {value!r}")
        floats = [
            ("temperature", lambda t: 0 <= t <= MAX_TEMPERATURE, f"a number from 0 to {MAX_TEMPERATURE} (0 is greedy)"),
            ("top_p", lambda p: 0 < p <= 1, "a number in (0, 1]"),
        ]
        for name, ok, expected in floats:
            value = getattr(self, name)
            if not _is_number(value) or not math.isfinite(value) or not ok(value):
                raise SettingsError(f"setting {name}: expected {expected}, got {value!r}")
        if self.no_call not in (None, "list", "text", "threshold"):
            raise SettingsError(f"setting no_call: expected None, 'list', 'text' or 'threshold', got {self.no_call!r}")
        if self.tool_format not in (None, "card", "native"):
            raise SettingsError(f"setting tool_format: expected None, 'card' or 'native', got {self.tool_format!r}")
        t = self.no_call_threshold
        if t is not None and (not _is_number(t) or not 0 <= t <= 1):
            raise SettingsError(f"setting no_call_threshold: expected None or a probability in [0, 1], got {t!r}")
        for name in ("constrained", "fast_forward", "speculate", "verbose", "repack"):
            if not isinstance(getattr(self, name), bool):
                raise SettingsError(f"setting {name}: expected True or False, got {getattr(self, name)!r}")
        for name in ("date_string", "prefix_cache_dir", "chat_template"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, (str, os.PathLike)):
                raise SettingsError(f"setting {name}: expected None or a string, got {type(value).__name__}")
            if isinstance(value, str) and not is_utf8(value):
                raise SettingsError(f"setting {name}: expected UTF-8 text, got {value!r} (undecodable bytes)")

    @property
    def threads(self) -> int:
        return self.n_threads or max(1, os.cpu_count() or 1)

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


# Fixed when the model loads: the context, threads and offload, the prefix caches, the chat template.
LOAD_TIME_FIELDS = frozenset({
    "n_ctx", "n_threads", "n_batch", "n_gpu_layers", "prefix_cache_entries", "prefix_cache_mb",
    "prefix_cache_dir", "prefix_cache_disk_mb", "chat_template", "n_parallel", "repack",
})
PER_CALL_FIELDS = frozenset(f.name for f in fields(Settings)) - LOAD_TIME_FIELDS
