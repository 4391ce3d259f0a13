"""The engine: one loaded model, its sequences, caches and token tables, and the step that decodes
any number of sessions (session.py) together.

`open` evaluates a request's prompt into a free sequence and returns its session; `step` evaluates
the pending tokens of the given sessions and lets each pick; `result` turns a finished session into
its `CallResult` and frees the sequence. `run` is a single call: a batch of one.

Batch invariance. A sequence's answer must not depend on what runs beside it, nor on what its
sequence held before. So (1) each sequence has its own KV stream (llama.py), (2) a prompt is
evaluated in canonical chunks, cut where the tools prefix ends and where each assistant turn starts
(prompts.py), each piece in chunks of n_batch from its start; cached tokens are reused only up to a
cut that the cached evaluation made too, with the same cuts before it (llama.py records them), so
what is in the cache never changes how a position was computed. A follow-up turn of a conversation
therefore evaluates only from the previous turn's generation prompt on: the previous answer (its
tokens were evaluated one step at a time, and are evaluated again as a fresh prompt would), the
tool results and the new request. (3) with ``batching``
"invariant" (the default) each session's tokens are evaluated in a llama_decode of their own,
because llama.cpp's CPU kernels round a row differently with the number of rows in the batch
(measured: logits differ by up to 0.3 on Qwen2.5 Q4_K_M). "shared" puts every session's tokens in
one llama_decode: faster where the weights' memory traffic dominates (a GPU, a big model), and then
an answer may differ from the same request alone in a near tie.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Optional, Sequence

import llama_cpp
from llguidance import LLMatcher
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

import jsonschema

from ..errors import ChatTemplateError, ContextOverflowError, GrammarStateError, OndeviceError, RelaxedCallError
from ..formats import get_format
from ..formats.blocks import NOT_JSON, ToolCall, message_call, validate_calls
from ..formats.prompt import Message
from ..formats.grammar import tool_call_lark
from ..formats.base import ToolFormat
from ..formats.reasoning import ThinkingBlock, thinking_block
from ..formats.result import CallResult
from ..formats.stream import split_calls
from ..grammar.calls import DEFAULT_OPTIONS, CallOptions, grammar_limits, is_limit_error, prose_lark
from ..schema.grammar_schema import Relaxation
from ..schema.tools import Tool, relaxations, schema_validator
from ..settings import CARD, Settings
from ..structured import parse_content
from ..template.chat_template import ChatTemplate
from .grammars import GrammarCache
from .llama import LlamaModel
from .prefix_cache import PrefixCache
from .prompts import Prompt, PromptBuilder
from .sampling import Sampler, mask_to_bool
from .grounding import Grounding, conversation_text
from .session import CallCheck, FirstBranch, Generation, Refusals, Session, Thinking, lcp, no_call_probability
from .speculate import Drafter, draft_source
from .vocabulary import Vocabulary

_LLAMA_CPP_VERSION = getattr(llama_cpp, "__version__", "?")


@dataclass
class Request:
    """What the engine keeps of a session's request, to make its result."""

    settings: Settings
    options: CallOptions
    normalized: list[Tool]
    reused: int
    prompt_s: float
    start: float
    p_list: Optional[float] = None


@dataclass
class ModelDefaults:
    """A model's own defaults (from its manifest): how "no call" is answered, and its tool format."""

    no_call: str = "list"
    no_call_threshold: float = 0.5
    tool_format: str = CARD


class Engine:
    """Owns the loaded model, its sequences (a pool of free slots), the prefix cache, the grammar
    cache and the token tables. Not thread-safe: one thread drives it (the facade's lock, or the
    server's worker)."""

    def __init__(self, model: LlamaModel, settings: Settings, defaults: Optional[ModelDefaults] = None):
        self.model = model
        self.settings = settings
        self.defaults = defaults or ModelDefaults()  # a fresh one per engine: never shared
        source = settings.chat_template or model.chat_template()
        if not source:
            raise ChatTemplateError(
                f"{model.path.name} carries no chat template: pass one with Settings(chat_template=...) "
                "or --chat-template FILE"
            )
        self.prompts = PromptBuilder(model, ChatTemplate(source, bos_token=model.bos_text, eos_token=model.eos_text),
                                     settings.date_string)
        self.thinking: Optional[ThinkingBlock] = thinking_block(source)  # a reasoning model's thought
        self.vocabulary = Vocabulary(model)
        self.grammars = GrammarCache(self.vocabulary)
        stat = model.path.stat()
        # Everything that changes the evaluated state: the file, the context and batch shape, the thread
        # count and the weights' layout (rounding), offload, and the llama.cpp build (state format).
        identity = "|".join(str(x) for x in (
            model.path.resolve(), stat.st_size, stat.st_mtime_ns, settings.n_ctx, settings.n_batch,
            settings.threads, settings.n_gpu_layers, _LLAMA_CPP_VERSION)
            + (("norepack",) if not settings.repack else ())
            + ((f"parallel={settings.n_parallel}x1",) if settings.n_parallel > 1 else ()))  # x1: one KV stream each
        self.prefix_cache = PrefixCache(settings.prefix_cache_entries, settings.prefix_cache_mb << 20,
                                        settings.prefix_cache_dir, namespace=identity,
                                        disk_max_bytes=settings.prefix_cache_disk_mb << 20)
        self.free = list(range(model.n_parallel))
        self.active: list[Session] = []
        self._requests: dict[int, Request] = {}

    # --- options ------------------------------------------------------------------------------------
    def tool_format(self, s: Optional[Settings] = None) -> str:
        """The setting tool_format, else the model's default."""
        return (s or self.settings).tool_format or self.defaults.tool_format

    def no_call_default(self, s: Optional[Settings] = None) -> str:
        """How "no call" is answered unless the settings say: the model's default in its own format, the
        named format's default in another (a Llama GGUF named llama3 answers in words, as its template's
        models are trained to)."""
        name = self.tool_format(s)
        return self.defaults.no_call if name == self.defaults.tool_format else get_format(name).no_call

    def options_for(self, s: Settings, options: CallOptions = DEFAULT_OPTIONS) -> CallOptions:
        """`options` completed for this model and these settings: its tags, its tool format, and how
        "no call" is answered (the setting no_call, else the model's default)."""
        name = self.tool_format(s)
        return replace(options, no_call=s.no_call or self.no_call_default(s),
                       markers=self.vocabulary.markers(get_format(name).tags), tool_format=name)

    def template_variables(self, s: Settings) -> Optional[dict[str, Any]]:
        """The chat template's own switches for these settings: thinking on or off (Qwen3's ``enable_thinking``)."""
        block = self.thinking
        if block is None or block.switch is None:
            return None
        return {block.switch: s.reasoning != "off"}

    def thinking_for(self, s: Settings, prompt: list[int]) -> Optional[Thinking]:
        """How the answer after `prompt` opens: with a thought (reasoning on, or a generation prompt that
        opened one: reasoning off then closes it at once), or None (no thinking block, or reasoning off)."""
        block = self.thinking
        if block is None:
            return None
        opened = block.opened_by(self.model.detokenize(prompt[-8:]).decode("utf-8", errors="replace"))
        if s.reasoning == "off" and not opened:
            return None
        return Thinking(block, 0 if s.reasoning == "off" else s.reasoning_budget, opened)

    def check_prompt_fits(self, prompt: list[int]) -> None:
        """A ContextOverflowError when `prompt` leaves no room for an answer token."""
        if len(prompt) + 1 > self.model.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {len(prompt)} tokens but the context holds {self.model.n_ctx}: raise n_ctx "
                f"(--n-ctx; the model was trained on {self.model.n_ctx_train}), or pass fewer tools or less history"
            )

    # --- sessions -------------------------------------------------------------------------------------
    def open(self, messages: list[Message], tools: Optional[Sequence[Any]], s: Settings,
             options: CallOptions = DEFAULT_OPTIONS, *, sampler: Optional[Sampler] = None,
             on_tokens: Optional[Callable[[list[int]], None]] = None, query: Optional[str] = None,
             on_text: Optional[Callable[[str], None]] = None,
             on_reasoning: Optional[Callable[[str], None]] = None) -> Session:
        """Evaluate a request's prompt into a free sequence and start its session (it may already be
        finished: `wants` is None). Errors leave the sequence free. `on_reasoning` sees a reasoning
        model's thought as it grows (see Session)."""
        if not self.free:
            raise OndeviceError(f"all {self.model.n_parallel} sequences are busy: wait for an answer to finish")
        start = time.perf_counter()
        options = self.options_for(s, options)
        normalized, grammar = self.grammars.compile(tools, s, options)
        fmt = get_format(options.tool_format)
        variable = fmt.template_tools(list(tools) if tools is not None else None)
        prepared = self.prompts.prepare(fmt.template_messages(messages), variable, s.date_string, fmt.query_offset,
                                        self.vocabulary.max_token_bytes, self.template_variables(s))
        prompt = prepared.tokens
        self.check_prompt_fits(prompt)
        thinking = self.thinking_for(s, prompt)
        matcher = self.grammars.matcher(normalized, grammar, s, options) if s.constrained else None
        seq = max(self.free, key=lambda q: lcp(self.model.seq_tokens[q], prompt))
        self.free.remove(seq)
        try:
            reused = self.prefill(seq, prepared)
            prompt_s = time.perf_counter() - start
            branch = self._first_branch(options, s) if s.constrained else None
            p_list = None
            if (branch is not None and not options.allows_text and options.min_calls == 0 and options.content is None
                    and thinking is None):  # after a thought, the prompt's own logits are not the answer's
                # "list" has no branch at the first token: the probability is still reported, from the
                # mask of the grammar that admits a sentence, so a threshold can be calibrated on it.
                p_list = self._list_no_call_probability(tools, s, options, branch)
            drafter = None
            if s.speculate and matcher is not None:  # drafts are copied from the turns, the query last
                last = messages[-1].get("content")
                source = query if query is not None else (last if isinstance(last, str) else "")
                drafter = Drafter(self.model, draft_source(source, messages[:-1]))
            refusals = Refusals(s.max_identical_calls, answered_calls(messages) if s.refuse_answered_calls else (),
                                start_over=_start_over(normalized, options, s),
                                grounded=_grounding(messages, normalized or (), fmt.query_offset, options, s))
            session = Session(
                self.model, seq, prompt, sampler or Sampler(s.temperature, s.top_p, s.seed), s.max_tokens, matcher,
                s.fast_forward, stop=fmt.free_stop(), refusals=refusals,
                drafter=drafter, on_tokens=on_tokens, markers=options.markers,
                branch=branch if options.allows_text else None, tool_format=options.tool_format,
                make_matcher=lambda lark: self.grammars.matcher(normalized, LLMatcher.grammar_from_lark(lark), s),
                model_ends_list=s.list_end == "model", on_text=on_text, content=options.allows_content,
                check=call_check(normalized) if matcher is not None else None, thinking=thinking,
                on_reasoning=on_reasoning)
        except BaseException as exc:
            self.model.truncate(0, seq)
            self.free.append(seq)
            if self._is_step_limit(exc, matcher):
                raise self.grammars.step_limit_error(matcher, normalized, "", s, options) from None
            raise
        self._requests[id(session)] = Request(s, options, normalized, reused, prompt_s, start, p_list)
        self.active.append(session)
        return session

    def step(self, sessions: Optional[Sequence[Session]] = None) -> list[tuple[Session, Optional[BaseException]]]:
        """Evaluate the pending tokens of `sessions` (default: every active one) and let each pick;
        returns the sessions that ended, each with the error that ended it or None (then call `result`)."""
        todo = [s for s in (self.active if sessions is None else sessions) if s.wants() is not None]
        ended: list[tuple[Session, Optional[BaseException]]] = []
        if self.settings.batching == "shared":
            groups, group, size = [], [], 0
            for session in todo:
                n = len(session.wants()[0])
                if group and size + n > self.model.n_batch:
                    groups.append(group)
                    group, size = [], 0
                group.append(session)
                size += n
            if group:
                groups.append(group)
        else:
            groups = [[session] for session in todo]
        for group in groups:
            runs = [(s.seq, *s.wants()) for s in group]
            try:
                rows = self.model.eval_many(runs)
            except BaseException as exc:
                ended.extend((s, exc) for s in group)
                continue
            for session, row in zip(group, rows):
                try:
                    session.accept(row)
                except BaseException as exc:
                    ended.append((session, self._explained(exc, session)))
        done = {id(s) for s, _ in ended}
        ended.extend((s, None) for s in (sessions or self.active) if s.finish is not None and id(s) not in done)
        return ended

    def result(self, session: Session) -> CallResult:
        """The answer of a finished session (parsed and validated); frees its sequence."""
        try:
            gen = session.generation()
            req = self._requests[id(session)]
            if req.p_list is not None:
                gen.no_call_probability = req.p_list
            return self._answer(gen, req, timings_of(session.prompt, req.reused, req.prompt_s, gen,
                                                     time.perf_counter() - req.start))
        finally:
            self.release(session)

    def release(self, session: Session) -> None:
        """Free a session's sequence (answered, failed or cancelled). Its prompt stays cached for reuse."""
        if session in self.active:
            self.active.remove(session)
            self._requests.pop(id(session), None)
            self.model.truncate(len(session.prompt), session.seq)
            self.free.append(session.seq)

    def run(self, session: Session) -> CallResult:
        """Decode one session to its end: a batch of one."""
        try:
            while session.wants() is not None:
                for _, error in self.step([session]):
                    if error is not None:
                        raise error
        except BaseException:
            self.release(session)
            raise
        return self.result(session)

    # --- prefill ----------------------------------------------------------------------------------------
    def prefill(self, seq: int, prompt: Prompt) -> int:
        """Bring sequence `seq` to all of `prompt` (the last token's logits in row -1), reusing what it
        holds or what the prefix cache holds, in canonical chunks (see the module's docstring);
        returns how many tokens were reused."""
        model, tokens = self.model, prompt.tokens
        prefix = min(prompt.prefix, len(tokens) - 1)
        cuts = canonical_cuts(len(tokens), prefix, prompt.turns, model.n_batch)
        common = min(lcp(model.seq_tokens[seq], tokens), len(tokens) - 1)
        reused = shared_cut(model.seq_cuts[seq], cuts, common)
        head = [c for c in cuts if c <= prefix]
        if reused < prefix:
            entry = self.prefix_cache.get(tokens[:prefix], head)
            if entry is not None and model.restore(entry.state, entry.tokens, head, seq):
                reused = prefix
        model.truncate(reused, seq)
        for start, end in zip(cuts, cuts[1:]):
            if end <= reused:
                continue
            model.eval(tokens[start:end], seq=seq)
            if end == prefix:
                self.prefix_cache.put(tokens[:prefix], model.snapshot(seq), head)
        return reused

    def decode_prompt(self, prompt: list[int], matcher: Optional[LLMatcher], sampler: Sampler, budget: int,
                      fast_forward: bool = True) -> Generation:
        """Decode after `prompt` in sequence 0 under `matcher` (already advanced as the caller wants),
        nothing cached reused: for benchmarks that time the loop itself."""
        model = self.model
        model.truncate(0, 0)
        model.eval(prompt, seq=0)
        session = Session(model, 0, prompt, sampler, budget, matcher, fast_forward)
        while session.wants() is not None:
            tokens, n_logits = session.wants()
            session.accept(model.eval_many([(0, tokens, n_logits)])[0])
        return session.generation()

    # --- pieces -------------------------------------------------------------------------------------------
    def _first_branch(self, options: CallOptions, s: Settings) -> FirstBranch:
        threshold = None
        if options.no_call == "threshold":
            threshold = s.no_call_threshold if s.no_call_threshold is not None else self.defaults.no_call_threshold
        return FirstBranch(self.vocabulary.call_start(options.message_max_chars), threshold,
                           self.vocabulary.call_intent(get_format(options.tool_format).tags))

    def _list_no_call_probability(self, tools: Optional[Sequence[Any]], s: Settings, options: CallOptions,
                                  branch: FirstBranch) -> float:
        _, grammar = self.grammars.compile(tools, s, replace(options, no_call="text"))
        matcher = LLMatcher(self.vocabulary.lltokenizer(), grammar, log_level=0, limits=grammar_limits(s))
        bitmask = allocate_token_bitmask(1, self.model.n_vocab)
        fill_next_token_bitmask(matcher, bitmask)
        allowed = mask_to_bool(bitmask[0], self.model.n_vocab)
        return no_call_probability(self.model.logits(), allowed, branch.call_start, branch.intent)

    @staticmethod
    def _is_step_limit(exc: BaseException, matcher: Optional[LLMatcher]) -> bool:
        return isinstance(exc, GrammarStateError) and matcher is not None and is_limit_error(matcher.get_error())

    def _explained(self, exc: BaseException, session: Session) -> BaseException:
        """A grammar failure over the per-mask limit as the error naming the tool, in the request's
        own format (its options); other errors as they are."""
        if not self._is_step_limit(exc, session.matcher):
            return exc
        req = self._requests[id(session)]
        text = self.model.detokenize(session.out).decode("utf-8", "replace")
        return self.grammars.step_limit_error(session.matcher, req.normalized, text, req.settings, req.options)

    def _answer(self, gen: Generation, req: Request, timings: dict[str, float]) -> CallResult:
        """Parse and (constrained) validate a generation into the answer."""
        s, options = req.settings, req.options
        message = value = None
        fmt = get_format(options.tool_format)
        if s.constrained and options.allows_content and not fmt.starts_calls(gen.text):
            calls, message = [], gen.text  # a JSON answer (response format) instead of a call
            value = parse_content(gen.text, options.content)
        elif s.constrained and options.allows_text and gen.text.strip() and not fmt.starts_calls(gen.text):
            calls: Optional[list[ToolCall]] = []  # the model answered with a sentence: no call
            message = gen.text.strip()
        else:
            calls = with_written_arguments(fmt.parse(gen.text), gen.text, fmt)
        if s.constrained and message is None:
            problems = (["the output holds no tool-call list"] if calls is None
                        else validate_calls(calls, req.normalized))
            if problems:  # the grammar guarantees this never happens; if it does, say so loudly
                raise GrammarStateError(f"constrained output failed validation: {problems} (a bug: please report "
                                        "it with the tools)", details=f"text: {gen.text!r}")
        return CallResult(calls, gen.text, gen.finish_reason, gen.truncated, timings, message, gen.no_call_probability,
                          value, relaxations(req.normalized) if s.constrained else [], gen.reasoning)


def with_written_arguments(calls: Optional[list[ToolCall]], text: str, fmt: ToolFormat) -> Optional[list[ToolCall]]:
    """`calls` with each one's arguments text as `text` holds it (the format's stream reader finds
    it), where the reader finds the same calls; else `calls` as they are."""
    if not calls:
        return calls
    written = split_calls(text, fmt)
    if [name for name, _ in written] != [c.name for c in calls]:
        return calls
    return [replace(c, arguments_text=arguments) for c, (_, arguments) in zip(calls, written)]


def canonical_cuts(n: int, prefix: int, turns: Sequence[int], chunk: int) -> list[int]:
    """Where a prompt of `n` tokens is cut for evaluation: at 0, the prefix's end and each turn's
    start, and every `chunk` tokens from each of those; `n` last. A function of the prompt alone, so
    a request evaluates its tokens the same way whatever the cache held."""
    marks = sorted({0, n} | {p for p in (prefix, *turns) if 0 < p < n})
    cuts = [c for a, b in zip(marks, marks[1:]) for c in range(a, b, chunk)]
    return cuts + [n]


def shared_cut(held: Sequence[int], cuts: Sequence[int], limit: int) -> int:
    """The last cut, at most `limit`, up to which a sequence evaluated with cuts `held` was cut
    exactly as `cuts` (so its cache there is what evaluating with `cuts` gives)."""
    best = 0
    for a, b in zip(held, cuts):
        if a != b or b > limit:
            break
        best = b
    return best


def timings_of(prompt: list[int], reused: int, prompt_s: float, gen: Generation, total_s: float) -> dict[str, float]:
    """The timings a CallResult reports."""
    return {
        "prompt_tokens": len(prompt),
        "prompt_reused": reused,
        "prompt_eval_s": round(prompt_s, 4),
        "sampled_tokens": gen.sampled,
        "forced_tokens": gen.forced,
        "decode_s": round(gen.seconds, 4),
        "decode_steps": gen.steps,
        "drafted_tokens": gen.drafted,
        "accepted_tokens": gen.accepted,
        "resampled_calls": gen.resampled,
        "reasoning_tokens": gen.reasoning_tokens,
        "total_s": round(total_s, 4),
    }


CALL_TRIES = 3  # draws of a call that fails a relaxed keyword before the error


def call_check(tools: Sequence[Tool], tries: int = CALL_TRIES) -> Optional[CallCheck]:
    """The check after decoding of the calls of tools whose grammar relaxed a keyword (None when no
    tool did): a call failing its tool's full schema is drawn again, and after `tries` draws the
    error names the tool, the relaxed keyword and its place, and what to do."""
    by_name = {t.name: t for t in tools if t.relaxed}
    if not by_name:
        return None

    def problem(call: Any) -> Optional[BaseException]:
        tool = by_name.get(call.get("name")) if isinstance(call, dict) else None
        if tool is None:
            return None
        validator = schema_validator(json.dumps(tool.parameters, sort_keys=True))
        error = jsonschema.exceptions.best_match(validator.iter_errors(call.get("arguments", {})))
        if error is None:
            return None
        relaxed = _relaxation_of(error, tool.relaxed)
        where = _dotted(error.absolute_path)
        return RelaxedCallError(
            f"tool {tool.name!r}: {tries} draws of its call broke {relaxed.keyword!r} at {relaxed.path}, a keyword "
            f"the grammar does not enforce (it is checked after decoding): {error.message} (arguments{where}). "
            "Remove or loosen that keyword, say the rule in the tool's description, or raise the temperature; "
            "mark the tool strict: true to have such schemas refused up front", field="tools")
    return CallCheck(problem, tries)


def _relaxation_of(error: jsonschema.ValidationError, relaxed: Sequence[Relaxation]) -> Relaxation:
    """The relaxed keyword a validation error comes from: the one its schema path passes through
    (``if``'s errors come from ``then``/``else``), else the first of the tool's."""
    path = _dotted(error.absolute_schema_path, "parameters")
    for r in relaxed:
        spots = [f"{r.path}.{k}" for k in ((r.keyword, "then", "else") if r.keyword == "if" else (r.keyword,))]
        if any(path == spot or path.startswith(spot + ".") or path.startswith(spot + "[") for spot in spots):
            return r
    return next((r for r in relaxed if r.keyword == error.validator), relaxed[0])


def _dotted(parts: Sequence[Any], root: str = "") -> str:
    """A jsonschema path as the relaxations write theirs: ``root``, ``.key`` for a key, ``[i]`` for an index."""
    return root + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in parts)


def _start_over(tools: list[Tool], options: CallOptions, s: Settings) \
        -> Optional[Callable[[frozenset[str]], Optional[str]]]:
    """What an answer whose first call was refused (repeated, or already answered) starts over with,
    so that an agent loop gets an answer rather than the same call again: a sentence where one may
    stand; the response format's JSON value alone; where a call is required, a call of another tool
    (the refused ones left out: none left, the list ends and the session says so). Otherwise None:
    the list ends, with no call."""
    if options.allows_text:
        return lambda refused: prose_lark(options.message_max_chars)
    if options.allows_content:
        return lambda refused: tool_call_lark(tools, replace(options, max_calls=0))
    if not options.min_calls:
        return None

    def others(refused: frozenset[str]) -> Optional[str]:
        left = tuple(t.name for t in options.callable_tools(tools) if t.name not in refused)
        return tool_call_lark(tools, replace(options, allowed=left).capped(s.max_calls)) if left else None
    return others


def _grounding(messages: Sequence[Message], tools: Sequence[Tool], query_offset: Callable[[str], int],
               options: CallOptions, s: Settings) -> Optional[Callable[[Any, Sequence[Any]], bool]]:
    """The check that refuses a call nobody asked for (given the calls before it in the answer): only
    where calls are optional (a required or named call is the caller's request, whatever its values)."""
    if not s.refuse_ungrounded_calls or options.min_calls:
        return None
    grounding = Grounding(conversation_text(messages, query_offset))
    parameters = {t.name: t.parameters for t in tools}
    return lambda call, earlier: grounding.grounded(
        call, parameters.get(call.get("name")) if isinstance(call, dict) else None, earlier)


def answered_calls(messages: Sequence[Message]) -> tuple[Any, ...]:
    """The calls of assistant turns that a tool result follows (native layout: ``tool_calls`` then
    ``tool`` turns), as {"name", "arguments"} values: a call identical to one of them is refused."""
    found = []
    for i, message in enumerate(messages):
        if message.get("role") != "assistant" or not message.get("tool_calls"):
            continue
        if not any(m.get("role") == "tool" for m in messages[i + 1:]):
            continue
        for call in message["tool_calls"]:
            name, arguments = message_call(call)
            if arguments is not NOT_JSON:
                found.append({"name": name, "arguments": arguments})
    return tuple(found)
