"""One settings object for loading and decoding, passed everywhere instead of loose kwargs."""

from __future__ import annotations

import os
from dataclasses import dataclass, fields, replace
from typing import Any, Optional

from .errors import OndeviceError


class SettingsError(OndeviceError, ValueError):
    """A setting is out of range."""


@dataclass(frozen=True)
class Settings:
    """How to load the model and decode.

    n_ctx: context window in tokens. n_threads: CPU threads (None: all cores). n_gpu_layers: layers
    to offload to Metal/CUDA when llama-cpp-python was built with it (0: CPU only, -1: all).
    temperature: 0 is greedy (the default, reproducible); above 0 samples with `seed` and `top_p`.
    max_tokens: the budget of generated tokens per call. constrained: decode under the tool-call
    grammar (False: free generation, for comparisons). fast_forward: append the tokens the grammar
    forces without sampling them (False: sample every token, for comparisons). date_string: pins the "Today Date" line of
    Llama 3.2's chat template. prefix_cache_entries / prefix_cache_mb: how many evaluated tool
    prefixes (KV snapshots) to keep in RAM, least recently used evicted first; prefix_cache_dir also
    keeps them on disk, so that a new process skips evaluating a known tools prefix. chat_template: Jinja
    source to use instead of the GGUF's own template. no_call: how an answer without a call is
    produced under the grammar: "list" (``<tool_call>[]</tool_call>``), "text" (the model may answer
    with a sentence instead, returned as ``calls == []`` and ``message``), "threshold" (as "text",
    but the first token's probability of a sentence, at least `no_call_threshold`, decides); None
    takes the model's default from its manifest ("list" for a model without one).
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
    date_string: Optional[str] = None
    prefix_cache_entries: int = 8
    prefix_cache_mb: int = 512
    prefix_cache_dir: Optional[str] = None
    chat_template: Optional[str] = None
    no_call: Optional[str] = None
    no_call_threshold: Optional[float] = None
    verbose: bool = False

    def __post_init__(self) -> None:
        checks = [
            (self.n_ctx >= 64, "n_ctx", "an integer >= 64"),
            (self.n_threads is None or self.n_threads >= 1, "n_threads", "None or an integer >= 1"),
            (self.n_batch >= 1, "n_batch", "an integer >= 1"),
            (self.n_gpu_layers >= -1, "n_gpu_layers", "-1 (all), 0 (CPU) or a layer count"),
            (self.temperature >= 0, "temperature", "a number >= 0 (0 is greedy)"),
            (0 < self.top_p <= 1, "top_p", "a number in (0, 1]"),
            (self.max_tokens >= 1, "max_tokens", "an integer >= 1"),
            (self.prefix_cache_entries >= 0, "prefix_cache_entries", "an integer >= 0"),
            (self.prefix_cache_mb >= 0, "prefix_cache_mb", "an integer >= 0"),
            (self.no_call in (None, "list", "text", "threshold"), "no_call", "None, 'list', 'text' or 'threshold'"),
            (self.no_call_threshold is None or 0 <= self.no_call_threshold <= 1, "no_call_threshold",
             "None or a probability in [0, 1]"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise SettingsError(f"setting {name}: expected {expected}, got {getattr(self, name)!r}")

    @property
    def threads(self) -> int:
        return self.n_threads or max(1, os.cpu_count() or 1)

    def with_(self, **changes: Any) -> "Settings":
        """A copy with some settings changed (unknown names are an error)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise SettingsError(f"unknown settings {unknown}; known: {sorted(known)}")
        return replace(self, **changes)
