"""The Python API: load a model once, then ask for tool calls.

    from ondevice import ToolCaller, Settings
    caller = ToolCaller.load()                      # the fine-tune if pulled, else the stand-in
    result = caller.call("What's the weather in Paris?", tools)
    result.calls   # [ToolCall(name='get_weather', arguments={'location': 'Paris'})]
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import llama_cpp
import numpy as np
from llguidance import LLMatcher, LLTokenizer
from llguidance.numpy import allocate_token_bitmask, fill_next_token_bitmask

from .chat_template import ChatTemplate
from .control_tokens import ControlTokens, refuse_unmapped_control_text, tokenize_prompt
from .decode import FirstBranch, Generation, decode, lcp, no_call_probability
from .errors import (CallerClosedError, ChatTemplateError, ContextOverflowError, GrammarStateError, QueryError,
                     SettingsError, ToolSchemaError)
from .grammar import (CALL_INTENT_STARTS, DEFAULT_OPTIONS, CallOptions, Markers, compile_grammar, explain_grammar_error,
                      grammar_limits, is_limit_error, message_lark, tool_over_step_limit)
from .grammar_tokenizer import build_lltokenizer, cached_token_pieces, is_special_token
from .jsonvalue import check_tools_value
from .limits import check_context_bytes, check_tool_limits
from .llama import LlamaModel
from .models import ResolvedModel, manifests, resolve
from .parse import CARD, NATIVE, TOOL_CALL_OPEN, ToolCall, block_closed, parse_calls, validate_calls
from .prefix_cache import PrefixCache, prepare_cache_dir
from .prompt import Message, check_query, prepare_messages, template_tools
from .sampling import Sampler, mask_to_bool
from .speculate import Drafter, draft_source
from .structured import content_format, parse_content, schema_of, with_instruction
from .settings import Settings
from .tools import Tool, normalize_tools

_QUERY_MARK = "\x00ondevice-query\x00"
CALL_INTENT_BYTES = {bytes([c]) for c in CALL_INTENT_STARTS.encode()}
_LLAMA_CPP_VERSION = getattr(llama_cpp, "__version__", "?")


@dataclass
class CallResult:
    """One answer: the calls (None only for unconstrained text that did not parse) and the raw text.

    message: the sentence the model answered with instead of a call (``no_call`` "text" or
    "threshold"; ``calls`` is then []). no_call_probability: in those modes, the probability the
    model gave a sentence rather than the tool-call block at the first token. value: with a
    response format (structured outputs), the answer's JSON value, validated against its schema
    (``message`` is then its JSON text and ``calls`` []).
    """

    calls: Optional[list[ToolCall]]
    text: str
    finish_reason: str
    truncated: bool = False
    timings: dict[str, float] = field(default_factory=dict)
    message: Optional[str] = None
    no_call_probability: Optional[float] = None
    value: Any = None

    def calls_as_dicts(self) -> Optional[list[dict[str, Any]]]:
        return None if self.calls is None else [c.to_dict() for c in self.calls]

    def to_dict(self) -> dict[str, Any]:
        return {
            "calls": self.calls_as_dicts(),
            "text": self.text,
            "finish_reason": self.finish_reason,
            "truncated": self.truncated,
            "message": self.message,
            "no_call_probability": self.no_call_probability,
            "value": self.value,
            "timings": self.timings,
        }


def check_tools(tools: Optional[Sequence[Any]], settings: Settings,
                options: CallOptions = DEFAULT_OPTIONS) -> tuple[list[Tool], str]:
    """The tools normalized and their compiled grammar; a ToolSchemaError naming the tool and the
    path when they are malformed or cannot be satisfied, an InputLimitError when they are over a
    limit of `settings`, a ToolChoiceError when `options` cannot be met. Needs no model: check
    before loading one."""
    check_tool_limits(tools, settings)
    return _compile_tools(tools, settings, options)


def _compile_tools(tools: Optional[Sequence[Any]], settings: Settings,
                   options: CallOptions) -> tuple[list[Tool], str]:
    """`check_tools` after its limits were checked."""
    check_tools_value(tools)
    normalized = normalize_tools(tools)
    return normalized, compile_grammar(normalized, grammar_limits(settings), options.capped(settings.max_calls))


class ToolCaller:
    """A loaded model that answers queries with tool calls.

    Safe to share between threads: `call` and `close` hold `lock`, so calls on one loaded model run
    one at a time, each as it would alone; `close` waits for a running call, and a call after it
    raises CallerClosedError.
    """

    def __init__(self, model: LlamaModel, settings: Settings, resolved: Optional[ResolvedModel] = None,
                 load_seconds: float = 0.0):
        self.model = model
        self.settings = settings
        self.resolved = resolved
        self.load_seconds = load_seconds
        source = settings.chat_template or model.chat_template()
        if not source:
            raise ChatTemplateError(
                f"{model.path.name} carries no chat template: pass one with Settings(chat_template=...) "
                "or --chat-template FILE"
            )
        self.template = ChatTemplate(source, bos_token=model.bos_text, eos_token=model.eos_text)
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
        self._lltokenizer: Optional[LLTokenizer] = None
        self._pieces: Optional[list[bytes]] = None  # each token's bytes (see _token_pieces)
        self._max_token_bytes: Optional[int] = None
        self._markers: Optional[Markers] = None
        self._call_start: Optional[np.ndarray] = None  # the tokens a sentence cannot start with
        self._intent: Optional[np.ndarray] = None
        self._eog: Optional[list[int]] = None
        self._control: Optional[ControlTokens] = None
        self._grammars: "OrderedDict[str, tuple[list[Tool], str]]" = OrderedDict()
        manifest = manifests().get(resolved.alias, {}) if resolved is not None and resolved.alias else {}
        self.default_no_call: str = manifest.get("no_call", "list")
        self.default_no_call_threshold: float = manifest.get("no_call_threshold", 0.5)
        self.default_tool_format: str = manifest.get("tool_format", CARD)
        self._first_call = True
        self.lock = threading.RLock()
        self.closed = False

    @classmethod
    def load(cls, model: Optional[str | Path] = None, settings: Optional[Settings] = None) -> "ToolCaller":
        """Load a model: a .gguf path, an alias from models/, a hub repo id, or None for the default."""
        settings = settings or Settings()
        if settings.prefix_cache_dir is not None:
            prepare_cache_dir(settings.prefix_cache_dir)  # a bad directory fails before the model loads
        resolved = resolve(None if model is None else str(model))
        start = time.perf_counter()
        llama = LlamaModel(resolved.path, settings)
        return cls(llama, settings, resolved, time.perf_counter() - start)

    # --- prompt -------------------------------------------------------------------------------------
    def render(self, messages: list[Message], date_string: Optional[str] = None,
               tools: Optional[list[Any]] = None) -> str:
        """The prompt text for `messages`, as the model's chat template renders it.

        `date_string` pins the template's "Today Date" (default: the loaded settings' date_string);
        `tools` is the template's own ``tools`` variable (the native format, see `template_tools`).
        """
        date = self.settings.date_string if date_string is None else date_string
        return self.template.render(messages, add_generation_prompt=True, date_string=date, tools=tools)

    def tokenize_prompt(self, messages: list[Message], date_string: Optional[str] = None,
                        tools: Optional[list[Any]] = None) -> tuple[str, list[int]]:
        """The rendered prompt (as `render`) and its tokens, control tokens coming only from the template's markup."""
        date = self.settings.date_string if date_string is None else date_string
        text, spans = self.template.render_with_spans(messages, add_generation_prompt=True, date_string=date,
                                                      tools=tools)
        if self._control is None:
            self._control = ControlTokens(self.model.control_tokens)
        # Keys (property names, argument names) are rendered by the template as they are, unmarked:
        # one holding control-token text cannot be kept as plain text, so it is refused.
        for key in _keys([messages, tools]):
            if self._control.spans(key):
                raise ChatTemplateError(f"the key {key[:80]!r} (in the tools or messages) holds control-token text "
                                        f"{key[slice(*self._control.spans(key)[0])]!r}: rename it")
        if spans is None:
            refuse_unmapped_control_text(_strings([messages, tools]), self._control)
            return text, self.model.tokenize(text)
        return text, tokenize_prompt(text, spans, self._control, self.model.tokenize)

    def _tools(self, tools: Optional[Sequence[Any]], s: Settings,
               options: CallOptions = DEFAULT_OPTIONS) -> tuple[list[Tool], str]:
        check_tool_limits(tools, s)  # before json.dumps below: a deep list would overflow its recursion
        options = options.capped(s.max_calls)
        limits = (s.grammar_compile_fuel, s.grammar_step_fuel, s.grammar_max_size)
        key = json.dumps([tools, limits, options.key()], sort_keys=True, default=str)
        hit = self._grammars.get(key)
        if hit is None:
            hit = _compile_tools(tools, s, options)
            self._grammars[key] = hit
            while len(self._grammars) > 32:
                self._grammars.popitem(last=False)
        else:
            self._grammars.move_to_end(key)
        return hit

    def grammar(self, tools: Optional[Sequence[Any]], settings: Optional[Settings] = None,
                options: CallOptions = DEFAULT_OPTIONS) -> tuple[list[Tool], str]:
        """The tools normalized and the compiled grammar a call with these settings decodes under
        (cached; for benchmarks and exports that drive the engine themselves)."""
        s = settings or self.settings
        return self._tools(tools, s, self.grammar_options(s, options))

    def lltokenizer(self) -> LLTokenizer:
        if self._lltokenizer is None:  # built once per process, on first use (see grammar_tokenizer.py)
            self._lltokenizer = build_lltokenizer(self.model, self._token_pieces())
        return self._lltokenizer

    def _token_pieces(self) -> list[bytes]:
        """Each token's bytes as llguidance sees them (special tokens marked), read once (from the
        cache file: ~25 ms for 128k tokens) and kept: the grammar tokenizer, the bound on a token's
        bytes, the end-of-generation and call-intent tables are all made from them."""
        if self._pieces is None:
            self._pieces = cached_token_pieces(self.model)
            self._max_token_bytes = max(map(len, self._pieces), default=1)
        return self._pieces

    @property
    def max_token_bytes(self) -> int:
        """An upper bound on the bytes of text one token covers (the longest token's bytes)."""
        if self._max_token_bytes is None:
            self._token_pieces()
        return self._max_token_bytes

    def markers(self) -> Markers:
        """How this model's tokenizer writes the tags (text pieces, or one special token each)."""
        if self._markers is None:
            self._markers = Markers.for_tokenizer(self.model.tokenize, lambda t: is_special_token(self.model, t))
        return self._markers

    def grammar_options(self, settings: Settings, options: CallOptions = DEFAULT_OPTIONS) -> CallOptions:
        """`options` completed for this model and these settings: its tags, and how "no call" is
        answered (the setting no_call, else the model's default)."""
        return replace(options, no_call=settings.no_call or self.default_no_call, markers=self.markers(),
                       tool_format=self.tool_format(settings))

    def tool_format(self, settings: Optional[Settings] = None) -> str:
        """How calls are prompted and laid out with these settings: the setting tool_format, else the
        model's manifest default ("card" without one)."""
        return (settings or self.settings).tool_format or self.default_tool_format

    def _first_branch(self, options: CallOptions, settings: Settings) -> FirstBranch:
        """The tokens that start the tool-call block rather than a sentence, i.e. every token a
        sentence cannot start with (one mask, computed once), and the threshold when one decides."""
        if self._call_start is None:  # the same in both formats: a sentence never starts like a call
            grammar = LLMatcher.grammar_from_lark(message_lark(options.message_max_chars))
            matcher = LLMatcher(self.lltokenizer(), grammar, log_level=0)
            bitmask = allocate_token_bitmask(1, self.model.n_vocab)
            fill_next_token_bitmask(matcher, bitmask)
            call_start = ~mask_to_bool(bitmask[0], self.model.n_vocab)
            call_start[self._eog_ids()] = False  # ending at once: no call
            self._call_start = call_start
        threshold = None
        if options.no_call == "threshold":
            threshold = settings.no_call_threshold
            if threshold is None:
                threshold = self.default_no_call_threshold
        return FirstBranch(self._call_start, threshold, self.call_intent())

    def call_intent(self) -> np.ndarray:
        """The tokens that start a call in any spelling (their text, less leading blanks, starts with
        one of grammar.CALL_INTENT_STARTS; the tags' own tokens; never an end-of-turn or other
        control token), as a bool array over the vocabulary; computed once."""
        if self._intent is None:
            # llguidance's token bytes: a special token's are marked (0xff first), so it is never intent
            pieces = self._token_pieces()
            intent = np.fromiter((p.lstrip()[:1] in CALL_INTENT_BYTES for p in pieces), dtype=bool, count=len(pieces))
            markers = self.markers()
            intent[[t for t in markers.open_ids if markers.special]] = True
            intent[self._eog_ids()] = False
            self._intent = intent
        return self._intent

    def _eog_ids(self) -> list[int]:
        """The end-of-generation tokens (special tokens asked one by one: a few hundred calls, not the vocabulary)."""
        if self._eog is None:
            pieces = self._token_pieces()
            self._eog = [t for t, p in enumerate(pieces) if p[:1] == b"\xff" and self.model.is_eog(t)]
        return self._eog

    def _no_call_probability(self, tools: Optional[Sequence[Any]], s: Settings, options: CallOptions,
                             branch: FirstBranch) -> float:
        _, grammar = self._tools(tools, s, replace(options, no_call="text"))
        matcher = LLMatcher(self.lltokenizer(), grammar, log_level=0, limits=grammar_limits(s))
        bitmask = allocate_token_bitmask(1, self.model.n_vocab)
        fill_next_token_bitmask(matcher, bitmask)
        allowed = mask_to_bool(bitmask[0], self.model.n_vocab)
        return no_call_probability(self.model.logits(), allowed, branch.call_start, branch.intent)

    # --- evaluation with prefix reuse ---------------------------------------------------------------
    def check_prompt_fits(self, prompt: list[int]) -> None:
        """A ContextOverflowError when `prompt` leaves no room for an answer token."""
        model = self.model
        if len(prompt) + 1 > model.n_ctx:
            raise ContextOverflowError(
                f"the prompt is {len(prompt)} tokens but the context holds {model.n_ctx}: raise n_ctx "
                f"(--n-ctx; the model was trained on {model.n_ctx_train}), or pass fewer tools or less history"
            )

    def _evaluate(self, prompt: list[int], prefix_len: int) -> int:
        """Bring the KV cache to `prompt`, reusing what is cached; returns how many tokens were reused."""
        model = self.model
        self.check_prompt_fits(prompt)
        common = lcp(model.tokens, prompt)
        if common < prefix_len:
            entry = self.prefix_cache.get(prompt[:prefix_len])
            if entry is not None and model.restore(entry.state, entry.tokens):
                common = prefix_len
        model.truncate(min(common, len(prompt) - 1))  # at least one token is evaluated, for fresh logits
        reused = len(model.tokens)
        if reused < prefix_len:
            model.eval(prompt[reused:prefix_len])
            self.prefix_cache.put(prompt[:prefix_len], model.snapshot())
        model.eval(prompt[len(model.tokens):])
        return reused

    # --- the call ------------------------------------------------------------------------------------
    def call(
        self,
        query: str,
        tools: Optional[Sequence[Any]] = None,
        history: Optional[list[Message]] = None,
        settings: Optional[Settings] = None,
        *,
        sampler: Optional[Sampler] = None,
        options: CallOptions = DEFAULT_OPTIONS,
        on_tokens: Optional[Callable[[list[int]], None]] = None,
    ) -> CallResult:
        """Answer `query` with calls of `tools` (a list in the card's or OpenAI's format).

        `history` is the conversation so far (from `Conversation`, or the card's messages). With
        `settings.constrained` (the default) the result is always a valid tool-call list: [] when no
        tool fits. `settings` overrides decoding settings (temperature, seed, max_tokens, ...) for
        this call only; changing a load-time setting (n_ctx, threads, offload, caches, chat template)
        is a SettingsError. `sampler`
        replaces the token chooser built from the settings (the grammar still restricts its choices).
        `options` bounds the number of calls and which tools may be called (OpenAI's tool_choice);
        `on_tokens` sees the tokens as they are generated (see `decode`).
        """
        with self.lock:
            if self.closed:
                raise CallerClosedError("this ToolCaller is closed: load a new one with ToolCaller.load()")
            s = settings or self.settings
            self.settings.check_per_call(s)
            check_query(query)
            check_tool_limits(tools, s)  # before prepare_messages writes the tools out as JSON
            messages = prepare_messages(query, list(tools) if tools is not None else None, history,
                                        self.tool_format(s))
            return self._answer(messages, tools, s, sampler, options, on_tokens, query)

    def call_messages(
        self,
        messages: list[Message],
        tools: Optional[Sequence[Any]] = None,
        settings: Optional[Settings] = None,
        *,
        sampler: Optional[Sampler] = None,
        options: CallOptions = DEFAULT_OPTIONS,
        on_tokens: Optional[Callable[[list[int]], None]] = None,
        query: Optional[str] = None,
    ) -> CallResult:
        """Answer a conversation already in the layout of the tool format (see `prepare_messages`;
        native: the chat template's own messages, assistant ``tool_calls`` and ``tool`` results
        included): the next assistant turn. The evaluated prefix kept in the prefix cache ends where `query` (its last
        occurrence in the last message; default: that message's whole text) begins."""
        with self.lock:
            if self.closed:
                raise CallerClosedError("this ToolCaller is closed: load a new one with ToolCaller.load()")
            s = settings or self.settings
            self.settings.check_per_call(s)
            return self._answer(messages, tools, s, sampler, options, on_tokens, query)

    def _prepare(self, messages: list[Message], tools: Optional[Sequence[Any]], s: Settings,
                 options: CallOptions, query: Optional[str]) -> tuple[list[Tool], str, list[int], int]:
        """(tools normalized, grammar, prompt tokens, length of its tools prefix) of one request;
        `options` as completed by `grammar_options`."""
        normalized, grammar = self._tools(tools, s, options)
        variable = template_tools(list(tools) if tools is not None else None, options.tool_format)
        check_context_bytes(sum(len(text.encode("utf-8")) for text in _strings([messages, variable])), self.model.n_ctx,
                            self.max_token_bytes)
        prefix_text = self.render(messages, s.date_string, variable)
        last = messages[-1].get("content")
        if isinstance(last, str) and last:
            query = last if query is None else query
            at = last.rfind(query) if query else -1
            if at >= 0:
                marked = list(messages)
                marked[-1] = dict(marked[-1], content=last[:at] + _QUERY_MARK + last[at + len(query):])
                prefix_text = self.render(marked, s.date_string, variable).split(_QUERY_MARK, 1)[0]
        _, prompt = self.tokenize_prompt(messages, s.date_string, variable)
        # Special-token parsing here is harmless: these tokens only measure how much of `prompt` is
        # the tools prefix (content with control-token text just shortens the match).
        prefix_len = lcp(self.model.tokenize(prefix_text), prompt)
        return normalized, grammar, prompt, prefix_len

    def _matcher(self, normalized: list[Tool], grammar: str, s: Settings,
                 options: CallOptions = DEFAULT_OPTIONS) -> Optional[LLMatcher]:
        """A fresh grammar matcher for one answer (None when unconstrained)."""
        if not s.constrained:
            return None
        matcher = LLMatcher(self.lltokenizer(), grammar, log_level=2 if s.verbose else 0, limits=grammar_limits(s))
        if matcher.is_error():
            raise explain_grammar_error(normalized, self.lltokenizer(), s, matcher.get_error(), options)
        return matcher

    def _step_limit_error(self, matcher: LLMatcher, normalized: list[Tool], text: str, s: Settings,
                          options: CallOptions = DEFAULT_OPTIONS) -> ToolSchemaError:
        """The error for a mask computation over grammar_step_fuel, naming the tool being written."""
        name = tool_over_step_limit(text, normalized, self.lltokenizer(), s, options)
        return ToolSchemaError(
            f"tool {name!r}: computing its grammar's next-token mask went over the limit "
            f"({matcher.get_error().splitlines()[0]}; setting grammar_step_fuel={s.grammar_step_fuel}): simplify its "
            "schema (long or nested patterns, large enums) or raise grammar_step_fuel"
        )

    def _result(self, gen: Generation, normalized: list[Tool], s: Settings, timings: dict[str, float],
                options: CallOptions = DEFAULT_OPTIONS) -> CallResult:
        """Parse and (constrained) validate a generation into the answer."""
        message = value = None
        if s.constrained and options.allows_content and not gen.text.startswith(TOOL_CALL_OPEN):
            calls, message = [], gen.text  # a JSON answer (response format) instead of a call
            value = parse_content(gen.text, options.content)
        elif s.constrained and options.allows_text and gen.text.strip() and not gen.text.startswith(TOOL_CALL_OPEN):
            calls: Optional[list[ToolCall]] = []  # the model answered with a sentence: no call
            message = gen.text.strip()
        else:
            calls = parse_calls(gen.text, options.tool_format)
        if s.constrained and message is None:
            problems = ["the output holds no tool-call list"] if calls is None else validate_calls(calls, normalized)
            if problems:  # the grammar guarantees this never happens; if it does, say so loudly
                raise GrammarStateError(f"constrained output failed validation: {problems} (a bug: please report "
                                        "it with the tools)", details=f"text: {gen.text!r}")
        if self._first_call:
            timings["load_s"] = round(self.load_seconds, 4)
            self._first_call = False
        return CallResult(calls, gen.text, gen.finish_reason, gen.truncated, timings, message, gen.no_call_probability,
                          value)

    def _answer(self, messages: list[Message], tools: Optional[Sequence[Any]], s: Settings,
                sampler: Optional[Sampler], options: CallOptions,
                on_tokens: Optional[Callable[[list[int]], None]], query: Optional[str]) -> CallResult:
        t0 = time.perf_counter()
        options = self.grammar_options(s, options)
        normalized, grammar, prompt, prefix_len = self._prepare(messages, tools, s, options, query)
        reused = self._evaluate(prompt, prefix_len)
        t1 = time.perf_counter()

        matcher = self._matcher(normalized, grammar, s, options)
        chooser = sampler or Sampler(s.temperature, s.top_p, s.seed)
        drafter = None
        if s.speculate and matcher is not None:  # drafts are copied from the turns, the query last
            last = messages[-1].get("content")
            source = query if query is not None else (last if isinstance(last, str) else "")
            drafter = Drafter(self.model, draft_source(source, messages[:-1]))
        # Free text stops after the first closed block: parse_response reads only that one.
        branch = self._first_branch(options, s) if s.constrained else None
        p_list = None
        if branch is not None and not options.allows_text and options.min_calls == 0 and options.content is None:
            # "list" has no branch at the first token: the probability is still reported, from the
            # mask of the grammar that admits a sentence, so a threshold can be calibrated on it.
            p_list = self._no_call_probability(tools, s, options, branch)
        try:
            # free text in the card format stops after its block; native blocks may follow one another
            stop = block_closed if options.tool_format == CARD else None
            gen = decode(self.model, chooser, s.max_tokens, matcher, s.fast_forward, stop=stop,
                         max_identical=s.max_identical_calls, drafter=drafter, on_tokens=on_tokens,
                         markers=options.markers, branch=branch if options.allows_text else None,
                         tool_format=options.tool_format, content=options.allows_content)
        except GrammarStateError:
            if matcher is None or not is_limit_error(matcher.get_error()):
                raise
            text = self.model.detokenize(self.model.tokens[len(prompt):]).decode("utf-8", "replace")
            raise self._step_limit_error(matcher, normalized, text, s, options) from None
        if p_list is not None:
            gen.no_call_probability = p_list
        return self._result(gen, normalized, s, _timings(prompt, reused, t1 - t0, gen, time.perf_counter() - t0),
                            options)

    def generate_json(self, query_or_messages: str | list[Message], schema: Any, settings: Optional[Settings] = None,
                      *, name: str = "response", sampler: Optional[Sampler] = None) -> Any:
        """One JSON value valid against `schema` (a JSON Schema dict, or a pydantic model class: then
        an instance of it), answering a query or a conversation (chat messages; the schema is added
        to their system message). The grammar enforces the schema; a keyword it cannot enforce is an
        OutputSchemaError naming it, a budget that ends inside the value a BudgetError naming max_tokens."""
        json_schema, model_class = schema_of(schema)
        fmt = content_format(json_schema, name)
        if isinstance(query_or_messages, str):
            check_query(query_or_messages)
            messages: list[Message] = [{"role": "user", "content": query_or_messages}]
        elif isinstance(query_or_messages, list) and query_or_messages:
            messages = list(query_or_messages)
        else:
            raise QueryError("expected a query (a string) or a non-empty list of chat messages, got "
                             f"{type(query_or_messages).__name__}")
        s = settings or self.settings
        if not s.constrained:
            raise SettingsError("generate_json decodes under the schema's grammar: it needs constrained=True")
        result = self.call_messages(with_instruction(messages, fmt), None, s, sampler=sampler,
                                    options=CallOptions(content=fmt))
        return result.value if model_class is None else model_class.model_validate(result.value)

    def conversation(self, tools: Optional[Sequence[Any]] = None) -> "Conversation":
        """A multi-turn helper bound to these tools."""
        return Conversation(self, tools)

    def close(self) -> None:
        """Free the model; waits for a running call (any thread) to finish first."""
        with self.lock:
            self.closed = True
            self.model.close()

    def __enter__(self) -> "ToolCaller":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Conversation:
    """Multi-turn tool calling. Card format: each answer goes back as ``json.dumps(calls)``, as in the
    card. Native format: as an assistant turn with ``tool_calls`` (or its sentence), and tool results
    (`add_tool_result`) as ``tool`` turns, all rendered by the model's own chat template."""

    def __init__(self, caller: ToolCaller, tools: Optional[Sequence[Any]] = None):
        self.caller = caller
        self.tools = list(tools) if tools is not None else []
        self.messages: list[Message] = []
        self._lock = threading.Lock()

    def ask(self, query: str, settings: Optional[Settings] = None) -> CallResult:
        """Answer `query` after the turns so far; from several threads, turns are taken one at a time."""
        with self._lock:
            result = self.caller.call(query, self.tools, self.messages or None, settings)
            tool_format = self.caller.tool_format(settings)
            self.messages = prepare_messages(query, self.tools, self.messages or None, tool_format)
            self._append_answer(result, tool_format)
            return result

    def add_tool_result(self, content: str) -> None:
        """Append a tool's result (native format only: the card has no place for one)."""
        if self.caller.tool_format() != NATIVE:
            raise ChatTemplateError("tool results are rendered only in the native tool format (the card's format "
                                    "has no tool turn): load with Settings(tool_format='native')")
        with self._lock:
            self.messages.append({"role": "tool", "content": content})

    def reply(self, settings: Optional[Settings] = None) -> CallResult:
        """The next assistant turn after the turns so far (e.g. after `add_tool_result`), native format."""
        with self._lock:
            if not self.messages:
                raise ChatTemplateError("nothing to answer yet: ask a query first")
            result = self.caller.call_messages(self.messages, self.tools, settings)
            self._append_answer(result, self.caller.tool_format(settings))
            return result

    def _append_answer(self, result: CallResult, tool_format: str) -> None:
        if tool_format == NATIVE:
            turn: dict[str, Any] = {"role": "assistant", "content": result.message or ""}
            if result.calls:
                turn["tool_calls"] = [{"type": "function", "function": c.to_dict()} for c in result.calls]
            elif result.calls is None:
                turn["content"] = result.text
            self.messages.append(turn)
            return
        if result.message is not None:
            content = result.message  # a sentence instead of a call goes back as the model wrote it
        elif result.calls is not None:
            content = json.dumps(result.calls_as_dicts())
        else:
            content = result.text
        self.messages.append({"role": "assistant", "content": content})


def _timings(prompt: list[int], reused: int, prompt_s: float, gen: Generation, total_s: float) -> dict[str, float]:
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
        "total_s": round(total_s, 4),
    }



def _keys(value: Any) -> list[str]:
    """Every dict key in a message or tools structure."""
    if isinstance(value, dict):
        return [str(k) for k in value] + [key for item in value.values() for key in _keys(item)]
    if isinstance(value, (list, tuple)):
        return [key for item in value for key in _keys(item)]
    return []


def _strings(value: Any) -> list[str]:
    """Every string in a message structure (content, tool calls, tool results), roles included."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    if isinstance(value, (list, tuple)):
        return [text for item in value for text in _strings(item)]
    return []
