"""The Python API: load a model once, then ask for tool calls.

    from ondevice import ToolCaller, Settings
    caller = ToolCaller.load()                      # the best tool-calling model installed
    result = caller.call("What's the weather in Paris?", tools)
    result.calls   # [ToolCall(name='get_weather', arguments={'location': 'Paris'})]
"""

from __future__ import annotations

import threading
import time

from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from llguidance import LLTokenizer

from .engine.engine import Engine, ModelDefaults
from .errors import CallerClosedError, ChatTemplateError, QueryError, SettingsError
from .grammar.calls import DEFAULT_OPTIONS, CallOptions, Markers
from .engine.grammars import check_tools
from .schema.limits import check_messages, check_tool_limits
from .engine.llama import LlamaModel
from .models.catalog import ResolvedModel, manifests, resolve
from .formats import format_names, get_format
from .formats.blocks import validate_calls
from .engine.prefix_cache import PrefixCache, prepare_cache_dir
from .formats.prompt import Message, check_query, prepare_messages
from .formats.result import CallResult
from .runner import RunResult, Step, run_tools
from .engine.sampling import Sampler
from .formats.detect import FormatChoice, choose as choose_format
from .structured import content_format, schema_of, with_instruction
from .settings import Settings
from .schema.tools import Tool

__all__ = ["CallResult", "Conversation", "RunResult", "Step", "ToolCaller", "check_tools", "validate_calls"]


class ToolCaller:
    """A loaded model that answers queries with tool calls: a facade over its `Engine`, a call
    being a batch of one.

    Safe to share between threads: `call` and `close` hold `lock`, so calls on one loaded model run
    one at a time, each as it would alone; `close` waits for a running call, and a call after it
    raises CallerClosedError.
    """

    def __init__(self, model: LlamaModel, settings: Settings, resolved: Optional[ResolvedModel] = None,
                 load_seconds: float = 0.0):
        manifest = manifests().get(resolved.alias, {}) if resolved is not None and resolved.alias else {}
        # the manifest's defaults, else the format the chat template shows (a GGUF loaded by its path)
        self.format_choice: FormatChoice = choose_format(manifest, settings.chat_template or model.chat_template())
        choice = self.format_choice
        self.engine = Engine(model, settings, ModelDefaults(choice.no_call, choice.no_call_threshold, choice.tool_format))
        self.settings = settings
        self.resolved = resolved
        self.load_seconds = load_seconds
        self._first_call = True
        self.lock = threading.RLock()
        self.closed = False
        self.closing = False  # set before close() waits for the lock: no new call may take it first

    @classmethod
    def load(cls, model: Optional[str | Path] = None, settings: Optional[Settings] = None) -> "ToolCaller":
        """Load a model: a .gguf path, an alias from models/, a hub repo id, or None for the default."""
        settings = settings or Settings()
        if settings.prefix_cache_dir is not None:
            prepare_cache_dir(settings.prefix_cache_dir)  # a bad directory fails before the model loads
        resolved = resolve(None if model is None else str(model))
        start = time.perf_counter()
        llama = LlamaModel(resolved.path, settings.load)
        return cls(llama, settings, resolved, time.perf_counter() - start)

    # --- what the engine holds, for tools and benchmarks ------------------------------------------------
    @property
    def model(self) -> LlamaModel:
        return self.engine.model

    @property
    def prefix_cache(self) -> PrefixCache:
        return self.engine.prefix_cache

    @property
    def template(self) -> Any:
        return self.engine.prompts.template

    @property
    def default_no_call(self) -> str:
        """How "no call" is answered unless a call's settings say (in the loaded settings' tool format)."""
        return self.engine.no_call_default(self.settings)

    @property
    def default_tool_format(self) -> str:
        return self.engine.defaults.tool_format

    @property
    def max_token_bytes(self) -> int:
        """An upper bound on the bytes of text one token covers (the longest token's bytes)."""
        return self.engine.vocabulary.max_token_bytes

    def render(self, messages: list[Message], date_string: Optional[str] = None,
               tools: Optional[list[Any]] = None) -> str:
        """The prompt text for `messages`, as the model's chat template renders it (see PromptBuilder.render)."""
        return self.engine.prompts.render(get_format(self.tool_format()).template_messages(messages), date_string, tools)

    def tokenize_prompt(self, messages: list[Message], date_string: Optional[str] = None,
                        tools: Optional[list[Any]] = None) -> tuple[str, list[int]]:
        """The rendered prompt and its tokens, control tokens coming only from the template's markup."""
        return self.engine.prompts.tokenize(get_format(self.tool_format()).template_messages(messages), date_string,
                                            tools)

    def grammar(self, tools: Optional[Sequence[Any]], settings: Optional[Settings] = None,
                options: CallOptions = DEFAULT_OPTIONS) -> tuple[list[Tool], str]:
        """The tools normalized and the compiled grammar a call with these settings decodes under
        (cached; for benchmarks and exports that drive the engine themselves)."""
        s = settings or self.settings
        return self.engine.grammars.compile(tools, s, self.engine.options_for(s, options))

    def lltokenizer(self) -> LLTokenizer:
        return self.engine.vocabulary.lltokenizer()

    def markers(self, settings: Optional[Settings] = None) -> Markers:
        """How this model's tokenizer writes the tags of the format these settings use (text pieces,
        or one special token each)."""
        return self.engine.vocabulary.markers(get_format(self.tool_format(settings)).tags)

    def tool_format(self, settings: Optional[Settings] = None) -> str:
        """How calls are prompted and laid out with these settings: the setting tool_format, else the
        model's manifest default ("card" without one)."""
        return self.engine.tool_format(settings or self.settings)

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
        on_text: Optional[Callable[[str], None]] = None,
        on_reasoning: Optional[Callable[[str], None]] = None,
    ) -> CallResult:
        """Answer `query` with calls of `tools` (a list in the card's or OpenAI's format).

        `history` is the conversation so far (from `Conversation`, or the card's messages). With
        `settings.constrained` (the default) the result is always a valid tool-call list: [] when no
        tool fits. `settings` overrides decoding settings (temperature, seed, max_tokens, ...) for
        this call only; changing a load-time setting (n_ctx, threads, offload, caches, chat template)
        is a SettingsError. `sampler` replaces the token chooser built from the settings (the grammar
        still restricts its choices). `options` bounds the number of calls and which tools may be
        called (OpenAI's tool_choice); `on_tokens` sees the tokens as they are generated; `on_text`
        sees the answer's text as it becomes final (a sentence as it grows, calls one accepted call
        at a time; the pieces add up to `result.text`: see Session); `on_reasoning` sees a reasoning
        model's thought as it grows (the pieces add up to `result.reasoning`).
        """
        self.check_open()  # before waiting: a closing caller takes no new call
        with self.lock:
            self.check_open()
            s = settings or self.settings
            self.settings.check_per_call(s)
            check_query(query)
            check_tool_limits(tools, s)  # before prepare_messages writes the tools out as JSON
            if history is not None:
                check_messages(history, s, "history")
            messages = prepare_messages(query, list(tools) if tools is not None else None, history,
                                        self.tool_format(s))
            return self._answer(messages, tools, s, sampler, options, on_tokens, query, on_text, on_reasoning)

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
        on_text: Optional[Callable[[str], None]] = None,
        on_reasoning: Optional[Callable[[str], None]] = None,
    ) -> CallResult:
        """Answer a conversation already in the layout of the tool format (see `prepare_messages`;
        native: the chat template's own messages, assistant ``tool_calls`` and ``tool`` results
        included): the next assistant turn. The evaluated prefix kept in the prefix cache ends where
        the first user turn's query begins; a follow-up turn picks up where the previous one's answer
        began. `query` (default: the last message's text) is what drafts are copied from last."""
        self.check_open()
        with self.lock:
            self.check_open()
            s = settings or self.settings
            self.settings.check_per_call(s)
            check_tool_limits(tools, s)
            check_messages(messages, s)
            return self._answer(messages, tools, s, sampler, options, on_tokens, query, on_text, on_reasoning)

    def check_open(self) -> None:
        """A CallerClosedError once `close` ran (or began: it waits for the running call only, not for
        calls other threads would start meanwhile)."""
        if self.closed or self.closing:
            raise CallerClosedError("this ToolCaller is closed: load a new one with ToolCaller.load()")

    def _answer(self, messages: list[Message], tools: Optional[Sequence[Any]], s: Settings,
                sampler: Optional[Sampler], options: CallOptions,
                on_tokens: Optional[Callable[[list[int]], None]], query: Optional[str],
                on_text: Optional[Callable[[str], None]] = None,
                on_reasoning: Optional[Callable[[str], None]] = None) -> CallResult:
        engine = self.engine
        session = engine.open(messages, tools, s, options, sampler=sampler, on_tokens=on_tokens, query=query,
                              on_text=on_text, on_reasoning=on_reasoning)
        result = engine.run(session)
        if self._first_call:
            result.timings["load_s"] = round(self.load_seconds, 4)
            self._first_call = False
        return result

    def generate_json(self, query_or_messages: str | list[Message], schema: Any, settings: Optional[Settings] = None,
                      *, name: str = "response", sampler: Optional[Sampler] = None) -> Any:
        """One JSON value valid against `schema` (a JSON Schema dict, or a pydantic model class: then
        an instance of it), answering a query or a conversation (chat messages; the schema is added
        to their system message). The grammar enforces the schema; a keyword it cannot enforce is an
        OutputSchemaError naming it, a budget that ends inside the value a BudgetError naming max_tokens."""
        s = settings or self.settings
        json_schema, model_class = schema_of(schema)
        fmt = content_format(json_schema, name, s.max_schema_depth)
        if isinstance(query_or_messages, str):
            check_query(query_or_messages)
            messages: list[Message] = [{"role": "user", "content": query_or_messages}]
        elif isinstance(query_or_messages, list) and query_or_messages:
            messages = list(query_or_messages)
        else:
            raise QueryError("expected a query (a string) or a non-empty list of chat messages, got "
                             f"{type(query_or_messages).__name__}")
        if not s.constrained:
            raise SettingsError("generate_json decodes under the schema's grammar: it needs constrained=True")
        result = self.call_messages(with_instruction(messages, fmt), None, s, sampler=sampler,
                                    options=CallOptions(content=fmt))
        return result.value if model_class is None else model_class.model_validate(result.value)

    def run(self, query_or_messages: str | list[Message], tools: Sequence[Any], *, max_turns: int = 8,
            settings: Optional[Settings] = None, history: Optional[list[Message]] = None,
            executors: Optional[dict[str, Callable[..., Any]]] = None,
            confirm: Optional[Callable[[Any], bool]] = None,
            on_step: Optional[Callable[[Step], None]] = None) -> RunResult:
        """Answer by running tools: call, run each call, give the results back, until the model answers
        in words (``stopped_by="text"``) or `max_turns` answers were made (``"max_turns"``).

        `tools`: Python functions (schema from the signature and docstring, `tool_from_function`),
        `MCPServers`, and tool dicts run by ``executors[name]``. A tool's exception goes back to the model
        as its result (``"Error: ValueError: ..."``) and into the step's `error`. `confirm(call)` is asked
        before each call runs (False: the call is declined, and the model told so); `on_step` sees each
        step as it ends. `history` continues a conversation (a previous ``result.messages``). A model
        whose default answer without a call is the empty list may answer in words here (no_call "text")."""
        return run_tools(self, query_or_messages, tools, max_turns=max_turns, settings=settings, history=history,
                         executors=executors, confirm=confirm, on_step=on_step)

    def conversation(self, tools: Optional[Sequence[Any]] = None) -> "Conversation":
        """A multi-turn helper bound to these tools."""
        return Conversation(self, tools)

    def close(self) -> None:
        """Free the model; waits for a running call (any thread) to finish first. Calls made from
        then on get a CallerClosedError (the lock is not fair: without the flag, threads calling in
        a loop could hold it until they stop)."""
        self.closing = True
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
        """Append a tool's result (a format with the chat template's layout only: the card has no place for one)."""
        if not get_format(self.caller.tool_format()).template_layout:
            names = [name for name in format_names() if get_format(name).template_layout]
            raise ChatTemplateError(f"tool results are rendered only in a tool format of the chat template's own "
                                    f"layout ({', '.join(names)}); the card's format has no tool turn: load with "
                                    f"Settings(tool_format=...) naming one")
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
        self.messages.append(get_format(tool_format).answer_turn(result))
