"""The tool loop: the model calls, ondevice runs each call, the results go back into the conversation,
until the model answers in words or the turn limit is reached (`ToolCaller.run`).

Only tools the caller passed can run: the grammar admits only their names, and a name without an
executor is refused here again. A tool that raises does not end the loop: ``Error: <type>: <message>``
goes back to the model as that tool's result, and the step records it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Optional, Protocol, Sequence

from .errors import SettingsError, ToolSchemaError
from .formats import get_format
from .formats.blocks import ToolCall
from .formats.prompt import Message, check_query, prepare_messages
from .formats.result import CallResult
from .mcp_client import MCPServers
from .schema.functions import call_with_arguments, tool_from_function
from .settings import Settings

Executor = Callable[[dict[str, Any]], "Outcome"]


@dataclass(frozen=True)
class Outcome:
    """What running one call gave: the text the model reads, and the error (None when it went well)."""

    result: str
    error: Optional[str] = None


@dataclass
class Step:
    """One call the model made and what running it gave: `result` is the text the model read (for a
    failed call ``"Error: ..."``), `error` the failure (``"ValueError: ..."``; None when it ran well),
    `turn` the model answer (1, 2, ...) that made the call."""

    call: ToolCall
    result: str
    error: Optional[str] = None
    turn: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"call": self.call.to_dict(), "result": self.result, "error": self.error, "turn": self.turn}


@dataclass
class RunResult:
    """A finished loop: the final answer's `text` ("" when the turn limit came first, or the model ended
    with an empty call list), every `step`, the number of model answers (`turns`), why it stopped
    (``"text"``: an answer without calls; ``"max_turns"``: the limit, after running the last turn's
    calls; ``"max_tokens"``: the budget ran out inside an answer's first call), the conversation (`messages`, in the tool format's layout: pass it as `history` to go on)
    and each answer (`results`)."""

    text: str
    steps: list[Step]
    turns: int
    stopped_by: str
    messages: list[Message] = field(default_factory=list)
    results: list[CallResult] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "steps": [s.to_dict() for s in self.steps], "turns": self.turns,
                "stopped_by": self.stopped_by}


class Answerer(Protocol):
    """What the loop needs of a ToolCaller (typed here so that this module does not import api.py)."""

    settings: Settings

    def call_messages(self, messages: list[Message], tools: Optional[Sequence[Any]] = None,
                      settings: Optional[Settings] = None, **kwargs: Any) -> CallResult: ...

    def tool_format(self, settings: Optional[Settings] = None) -> str: ...

    @property
    def default_no_call(self) -> str: ...


class Toolbox:
    """The tools of a run, each with what executes it: Python functions, MCP servers (`MCPServers`),
    and tool dicts whose executor `executors` names."""

    def __init__(self, tools: Sequence[Any], executors: Optional[dict[str, Callable[..., Any]]] = None):
        self.tools: list[dict[str, Any]] = []
        self._run: dict[str, Executor] = {}
        executors = dict(executors or {})
        for item in tools:
            if isinstance(item, MCPServers):
                for tool in item.tools():
                    self._add(tool, _mcp_executor(item, tool["name"]))
            elif isinstance(item, dict):
                name = _tool_name(item)
                if name not in executors:
                    raise ToolSchemaError(f"tool {name!r} is a dict with nothing to run it: pass a Python function "
                                          f"instead, or executors={{{name!r}: function}}")
                self._add(item, _function_executor(executors.pop(name)))
            elif callable(item):
                self._add(tool_from_function(item), _function_executor(item))
            else:
                raise ToolSchemaError(f"expected a tool to be a Python function, an MCPServers or a tool dict, "
                                      f"got {type(item).__name__}")
        if executors:
            raise ToolSchemaError(f"executors names tools that are not in the tools: {sorted(executors)}")

    def _add(self, tool: dict[str, Any], run: Executor) -> None:
        name = _tool_name(tool)
        if name in self._run:
            raise ToolSchemaError(f"two tools are named {name!r}: each tool needs a unique name")
        self.tools.append(tool)
        self._run[name] = run

    def run(self, call: ToolCall) -> Outcome:
        """Run one call; a tool's exception becomes its result (the loop goes on)."""
        run = self._run.get(call.name)
        if run is None:  # the grammar admits only the tools' names; this guards the unconstrained mode
            return _failure(f"UnknownTool: no tool named {call.name!r}; the tools are {sorted(self._run)}")
        try:
            return run(call.arguments if isinstance(call.arguments, dict) else {})
        except Exception as exc:  # noqa: BLE001 -- the model reads it as the tool's result
            return _failure(f"{type(exc).__name__}: {exc}")


def run_tools(
    caller: Answerer,
    query_or_messages: str | list[Message],
    tools: Sequence[Any],
    *,
    max_turns: int = 8,
    settings: Optional[Settings] = None,
    history: Optional[list[Message]] = None,
    executors: Optional[dict[str, Callable[..., Any]]] = None,
    confirm: Optional[Callable[[ToolCall], bool]] = None,
    on_step: Optional[Callable[[Step], None]] = None,
) -> RunResult:
    """The loop behind `ToolCaller.run` (see there)."""
    if isinstance(max_turns, bool) or not isinstance(max_turns, int) or max_turns < 1:
        raise SettingsError(f"max_turns must be a positive integer, got {max_turns!r}")
    box = Toolbox(tools, executors)
    s = settings or caller.settings
    if s.no_call is None and caller.default_no_call == "list":
        # The loop ends with an answer in words: a model whose default is the empty list may write one.
        s = s.with_(no_call="text")
    tool_format = caller.tool_format(s)
    fmt = get_format(tool_format)
    query: Optional[str] = None
    if isinstance(query_or_messages, str):
        query = check_query(query_or_messages)
        messages = prepare_messages(query, box.tools, history, tool_format)
    elif isinstance(query_or_messages, list) and query_or_messages:
        if history is not None:
            raise SettingsError("pass history with a query string; a list of messages is the whole conversation")
        messages = list(query_or_messages)
    else:
        raise ToolSchemaError("expected a query (a string) or a non-empty list of chat messages, got "
                              f"{type(query_or_messages).__name__}")
    steps: list[Step] = []
    results: list[CallResult] = []
    for turn in range(1, max_turns + 1):
        result = caller.call_messages(messages, box.tools, s, query=query if turn == 1 else None)
        results.append(result)
        messages.append(fmt.answer_turn(result))
        if not result.calls:
            if result.truncated:  # the budget ended inside the first call: no answer, and nothing to run
                return RunResult("", steps, turn, "max_tokens", messages, results)
            text = result.message if result.message is not None else (result.text if result.calls is None else "")
            return RunResult(text, steps, turn, "text", messages, results)
        for call in result.calls:
            if confirm is not None and not confirm(call):
                outcome = _failure("declined: the user did not allow this call")
            else:
                outcome = box.run(call)
            step = Step(call, outcome.result, outcome.error, turn)
            steps.append(step)
            if on_step is not None:
                on_step(step)
            messages.append({"role": "tool", "content": outcome.result})
    return RunResult("", steps, max_turns, "max_turns", messages, results)


def _tool_name(tool: dict[str, Any]) -> str:
    spec = tool.get("function") if tool.get("type") == "function" and isinstance(tool.get("function"), dict) else tool
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ToolSchemaError(f"a tool needs a 'name' (a non-empty string), got {name!r}")
    return name


def _failure(error: str) -> Outcome:
    return Outcome(f"Error: {error}", error)


def _text(value: Any) -> str:
    """A Python tool's return value as the text the model reads: a string as it is, anything else as JSON."""
    if isinstance(value, str):
        return value
    dump = getattr(value, "model_dump", None)  # a pydantic model
    if callable(dump):
        value = dump(mode="json")
    return json.dumps(value, ensure_ascii=False, default=str)


def _function_executor(fn: Callable[..., Any]) -> Executor:
    def run(arguments: dict[str, Any]) -> Outcome:
        return Outcome(_text(call_with_arguments(fn, arguments)))
    return run


def _mcp_executor(servers: MCPServers, name: str) -> Executor:
    def run(arguments: dict[str, Any]) -> Outcome:
        output = servers.call(name, arguments)
        if output.is_error:
            return _failure(output.text or "the tool reported an error")
        return Outcome(output.text)
    return run
