"""Batched decoding: the decode steps of several requests in one llama_decode (llama.cpp sequences).

A model loaded with ``Settings(n_parallel=N)`` holds N sequences (slots). Each admitted request
gets a free slot and its own matcher and sampler: its prompt is evaluated into its slot (reusing
what the slot holds, or the tools prefix restored from the prefix cache), then at each
`BatchEngine.step` every active request's pending tokens (the last pick and the forced run after
it) go into one batch, and each request picks its next token from its own row of logits. The
same grammar rules as decode.py apply (fast-forward, budget truncation closed validly, the
repetition bound, `on_tokens` streaming); speculation is off here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Sequence

from llguidance import LLMatcher
from llguidance.numpy import allocate_token_bitmask

from .api import CallResult, ToolCaller, _timings
from .decode import Generation, _close, _pick, _repeats, lcp
from .errors import GrammarStateError, OndeviceError
from .grammar import DEFAULT_OPTIONS, CallOptions, is_limit_error, Markers
from .prompt import Message
from .sampling import Sampler
from .settings import Settings
from .tools import Tool


@dataclass
class BatchRequest:
    """One request's decoding state in its slot."""

    slot: int
    settings: Settings
    normalized: list[Tool]
    prompt: list[int]
    matcher: LLMatcher
    sampler: Sampler
    budget: int
    on_tokens: Optional[Callable[[list[int]], None]]
    reused: int
    prompt_s: float
    start: float
    bitmask: Any = None
    markers: Markers = field(default_factory=Markers)  # the tags as this model writes them (for closing)
    options: CallOptions = DEFAULT_OPTIONS  # as completed by grammar_options (the tool format, for parsing)
    out: list[int] = field(default_factory=list)
    pending: list[int] = field(default_factory=list)  # appended, not yet evaluated
    sampled: int = 0
    forced: int = 0
    steps: int = 0
    finish: Optional[str] = None  # set when done

    def advance(self, model: Any) -> None:
        """Fast-forward forced tokens until a pick is needed or the answer is complete (decode.py's loop)."""
        m = self.matcher
        s = self.settings
        while True:
            if m.is_error():
                raise GrammarStateError(f"the grammar engine failed after {model.detokenize(self.out)!r} (a bug: please "
                                        "report it with the tools)", details=m.get_error())
            if s.fast_forward and not m.is_stopped():
                ff = m.compute_ff_tokens()[: self.budget - len(self.out)]
                if ff:
                    if not m.consume_tokens(ff):
                        raise GrammarStateError("the grammar engine refused its own forced tokens (a bug: please report "
                                                "it with the tools)", details=m.get_error())
                    self.out.extend(ff)
                    self.pending.extend(ff)
                    self.forced += len(ff)
                    if self.on_tokens is not None:
                        self.on_tokens(ff)
                    if s.max_identical_calls and _repeats(model, self.out, ff, s.max_identical_calls, self.options.tool_format):
                        self.finish = "repeat"
                        return
                    continue
            if m.is_stopped():
                self.finish = "stop"
            elif len(self.out) >= self.budget:
                self.finish = "budget"
            return

    def pick(self, model: Any, logits: Any) -> None:
        """Choose the next token from this request's row of logits, then advance."""
        token = _pick(self.sampler, logits, self.matcher, self.bitmask, self.out)
        if model.is_eog(token):  # allowed only where the answer is complete (native: after any block)
            self.finish = "stop"
            return
        if not self.matcher.consume_token(token):
            raise GrammarStateError(f"the grammar engine refused token {token} from its own mask after "
                                    f"{model.detokenize(self.out)!r} (a bug: please report it with the tools)",
                                    details=self.matcher.get_error())
        self.out.append(token)
        self.pending = [token]
        self.sampled += 1
        if self.on_tokens is not None:
            self.on_tokens([token])
        s = self.settings
        if s.max_identical_calls and _repeats(model, self.out, [token], s.max_identical_calls, self.options.tool_format):
            self.finish = "repeat"
            return
        self.advance(model)


class BatchEngine:
    """Decodes up to `caller.model.n_parallel` constrained requests together; not thread-safe (one
    thread drives it: `admit`, `step`, `finish`, `release`)."""

    def __init__(self, caller: ToolCaller):
        self.caller = caller
        self.model = caller.model
        self.free = list(range(self.model.n_parallel))
        self.active: list[BatchRequest] = []

    def admit(self, messages: list[Message], tools: Optional[Sequence[Any]], settings: Optional[Settings] = None,
              options: CallOptions = DEFAULT_OPTIONS, on_tokens: Optional[Callable[[list[int]], None]] = None,
              query: Optional[str] = None) -> BatchRequest:
        """Evaluate a request's prompt into a free slot and make it active (errors leave the slot free)."""
        caller, model = self.caller, self.model
        s = settings or caller.settings
        caller.settings.check_per_call(s)
        if not s.constrained:
            raise OndeviceError("batched decoding needs the tool-call grammar (constrained=True)")
        if not self.free:
            raise OndeviceError(f"all {model.n_parallel} slots are busy: wait for a request to finish")
        options = caller.grammar_options(s, options)
        if options.allows_text:
            raise OndeviceError(f"batched decoding answers \"no call\" as an empty list, not with no_call={options.no_call!r}: "
                                "use one sequence (ondevice serve --parallel 1) for that setting")
        t0 = time.perf_counter()
        normalized, grammar, prompt, prefix_len = caller._prepare(messages, tools, s, options, query)
        caller.check_prompt_fits(prompt)
        matcher = caller._matcher(normalized, grammar, s, options)
        # the free slot holding most of this prompt already (the same tools were answered there last)
        slot = max(self.free, key=lambda q: lcp(model.seq_tokens[q], prompt))
        self.free.remove(slot)
        try:
            reused = self._evaluate(slot, prompt, prefix_len)
        except BaseException:
            model.truncate(0, slot)
            self.free.append(slot)
            raise
        req = BatchRequest(slot, s, normalized, prompt, matcher, Sampler(s.temperature, s.top_p, s.seed),
                           max(0, min(s.max_tokens, model.n_ctx - len(prompt))), on_tokens, reused,
                           time.perf_counter() - t0, t0, allocate_token_bitmask(1, model.n_vocab),
                           markers=options.markers, options=options, pending=[prompt[-1]])
        self.active.append(req)
        try:
            req.advance(model)
        except BaseException:
            self.release(req)
            raise
        return req

    def _evaluate(self, slot: int, prompt: list[int], prefix_len: int) -> int:
        """Bring `slot` to all of `prompt` but its last token (evaluated with the first step); returns tokens reused."""
        model, cache = self.model, self.caller.prefix_cache
        body = prompt[:-1]
        common = lcp(model.seq_tokens[slot], body)
        if common < prefix_len:
            entry = cache.get(prompt[:prefix_len])
            if entry is not None and model.restore(entry.state, entry.tokens, slot):
                common = prefix_len
        model.truncate(common, slot)
        reused = common
        if reused < prefix_len:
            model.eval(body[reused:prefix_len], seq=slot)
            cache.put(prompt[:prefix_len], model.snapshot(slot))
        if len(model.seq_tokens[slot]) < len(body):
            model.eval(body[len(model.seq_tokens[slot]):], seq=slot)
        return reused

    def step(self) -> list[tuple[BatchRequest, Optional[BaseException]]]:
        """One decode step of every active request (one llama_decode per n_batch tokens); returns the
        requests that ended (with the error that ended it, or None when complete: then call `finish`)."""
        model = self.model
        ended: list[tuple[BatchRequest, Optional[BaseException]]] = []
        waiting = [r for r in self.active if r.finish is None]
        while waiting:
            group, size = [], 0
            while waiting and (not group or size + len(waiting[0].pending) <= model.n_batch):
                size += len(waiting[0].pending)
                group.append(waiting.pop(0))
            try:
                rows = model.eval_many([(r.slot, r.pending) for r in group])
            except BaseException as exc:
                ended.extend((r, exc) for r in group)
                continue
            for req, row in zip(group, rows):
                req.pending = []
                req.steps += 1
                try:
                    req.pick(model, model.logits(row))
                except GrammarStateError as exc:
                    error: BaseException = exc
                    if is_limit_error(req.matcher.get_error()):
                        text = model.detokenize(req.out).decode("utf-8", "replace")
                        error = self.caller._step_limit_error(req.matcher, req.normalized, text, req.settings)
                    ended.append((req, error))
                except BaseException as exc:
                    ended.append((req, exc))
        ended.extend((r, None) for r in self.active if r.finish is not None and all(r is not e for e, _ in ended))
        return ended

    def finish(self, req: BatchRequest) -> CallResult:
        """The answer of a request that ended without error (closed validly when cut); frees its slot."""
        model = self.model
        try:
            out = req.out
            truncated = False
            if req.finish == "budget":
                out, truncated = _close(model, req.matcher, out, req.markers, tool_format=req.options.tool_format,
                                        content=req.options.allows_content), True
            elif req.finish == "repeat":
                out = _close(model, req.matcher, out, req.markers, keep=-1, tool_format=req.options.tool_format)
            text = model.detokenize(out).decode("utf-8", errors="replace")
            gen = Generation(out, text, req.finish or "budget", truncated, req.sampled, req.forced,
                             time.perf_counter() - req.start - req.prompt_s, req.steps)
            timings = _timings(req.prompt, req.reused, req.prompt_s, gen, time.perf_counter() - req.start)
            return self.caller._result(gen, req.normalized, req.settings, timings, req.options)
        finally:
            self.release(req)

    def release(self, req: BatchRequest) -> None:
        """Free a request's slot (cancelled, failed or answered). Its tokens stay cached for reuse, less
        what it generated and the prompt's last token."""
        if req in self.active:
            self.active.remove(req)
            self.model.truncate(len(req.prompt) - 1, req.slot)
            self.free.append(req.slot)
