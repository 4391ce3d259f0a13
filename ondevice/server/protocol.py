"""The OpenAI Chat Completions protocol on top of the card's prompt layer: request checks, the
messages laid out as the card's conversation, tool_choice as grammar options, response objects.

No web framework here: the app (`app.py`) feeds it parsed JSON and sends what it returns.

How a conversation is laid out for the fine-tune (the card's multi-turn example, extended):
- the card's system prompt; a client's system (or developer) messages are appended to it after a
  blank line;
- the first user turn is the card's user template with the request's tools (``json.dumps`` of the
  list exactly as sent) and the user's text; later user turns are the text alone;
- an assistant turn with tool calls is ``json.dumps([{"name": ..., "arguments": {...}}, ...])``, as
  the card feeds answers back; an assistant turn with no calls is its text, or ``[]`` when empty;
- a ``tool`` result message is rendered with the chat template's own tool role (for Llama 3.2 the
  ``ipython`` header that Llama-3.2-Instruct was trained on for tool output), its content as sent.

In the native tool format (a model prompted with its own chat template, see `native_messages`) none
of the card's text is used: system, user, assistant (with ``tool_calls``, arguments as objects) and
tool messages go to the template as they are, and the tools as its ``tools`` variable.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any, Optional

from ..api import CallResult
from ..errors import (
    BudgetError,
    ContextOverflowError,
    InputLimitError,
    JSONInputError,
    OndeviceError,
    QueryError,
    RelaxedCallError,
    SettingsError,
    ToolChoiceError,
    ToolSchemaError,
)
from ..grammar.calls import CallOptions
from ..formats import get_format
from ..formats.card import SYSTEM_PROMPT, render_user_prompt
from ..formats.prompt import Message
from ..settings import Settings
from ..schema.limits import check_arguments_depth, check_tool_limits, parse_json_body
from ..schema.grammar_schema import Relaxation, describe_relaxed
from ..schema.tools import normalize_tools, relaxations
from ..structured import ContentFormat, OutputSchemaError, content_format, with_instruction


class APIError(Exception):
    """An error answered as ``{"error": {"message", "type", "param", "code"}}`` with an HTTP status."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 type_: Optional[str] = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.type = type_ or ("invalid_request_error" if status < 500 else "server_error")

    def to_dict(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def error_from_exception(exc: BaseException) -> APIError:
    """The API error for an exception raised while answering (bad input is 400, the rest 500); its
    `param` is the request field at fault."""
    if isinstance(exc, APIError):
        return exc
    error = _input_error(exc)
    if error is None:
        return APIError(500, f"internal error: {type(exc).__name__}: {exc}", None, "internal_error")
    field = getattr(exc, "field", None)
    if field:  # "messages[0].content" -> "messages"
        error.param = field.split(".")[0].split("[")[0] or error.param
    return error


def _input_error(exc: BaseException) -> Optional[APIError]:
    """The 400 for an error about the request, by its kind; None when it is not one."""
    if isinstance(exc, OutputSchemaError):
        return APIError(400, str(exc), "response_format", "invalid_response_format")
    if isinstance(exc, ToolSchemaError):
        return APIError(400, str(exc), "tools", "invalid_tool_schema")
    if isinstance(exc, RelaxedCallError):
        return APIError(400, str(exc), "tools", "relaxed_keyword_unmet")
    if isinstance(exc, ToolChoiceError):
        return APIError(400, str(exc), "tool_choice", "invalid_tool_choice")
    if isinstance(exc, ContextOverflowError):
        return APIError(400, str(exc), "messages", "context_length_exceeded")
    if isinstance(exc, BudgetError):
        return APIError(400, str(exc), "max_tokens", "max_tokens_too_small")
    if isinstance(exc, QueryError):
        return APIError(400, str(exc), "messages", "invalid_value")
    if isinstance(exc, JSONInputError):
        return APIError(400, str(exc), None, "invalid_json")
    if isinstance(exc, InputLimitError):
        return APIError(400, str(exc), None, "input_too_large")
    if isinstance(exc, OndeviceError) and isinstance(exc, ValueError):
        return APIError(400, str(exc), None, "invalid_value")
    return None


@dataclass
class ChatRequest:
    """A checked chat completion request, ready for the model."""

    messages: list[Message]
    tools: Optional[list[Any]]
    settings: Settings
    options: CallOptions
    query: Optional[str]
    stream: bool = False
    include_usage: bool = False
    tool_format: str = "card"
    content: Optional[ContentFormat] = None  # response_format: the answer is JSON valid against it
    stop_sequences: tuple[str, ...] = ()  # a sentence ends at the first of these (see tool_stream.find_stop)
    relaxed: tuple[Relaxation, ...] = ()  # keywords of the tools the grammar leaves to the check after decoding
    id: str = field(default_factory=lambda: "chatcmpl-" + secrets.token_hex(12))
    created: int = field(default_factory=lambda: int(time.time()))


_TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer", float: "a number", list: "an array",
               dict: "an object"}


def _field(body: dict[str, Any], name: str, kinds: tuple[type, ...], default: Any = None) -> Any:
    value = body.get(name)
    if value is None:
        return default
    ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
    if not ok:
        wanted = " or ".join(_TYPE_NAMES[k] for k in kinds)
        raise APIError(400, f"expected '{name}' to be {wanted}, got {json_type(value)}", name, "invalid_type")
    return value


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "an object"}.get(type(value), type(value).__name__)


def parse_chat_request(body: Any, model_id: str, base: Settings, tool_format: str = "card") -> ChatRequest:
    """Check a request body and lay it out for the model (in `tool_format`, the loaded model's);
    raises APIError naming the field."""
    if not isinstance(body, dict):
        raise APIError(400, f"expected the request body to be a JSON object, got {json_type(body)}", None, "invalid_type")
    model = _field(body, "model", (str,))
    if model is None:
        raise APIError(400, f"'model' is missing: pass \"{model_id}\" (see GET /v1/models)", "model", "missing_required_parameter")
    if model != model_id:
        raise APIError(404, f"the model {model!r} does not exist here: this server serves \"{model_id}\"", "model",
                       "model_not_found")
    unsupported = {
        "n": lambda v: v != 1, "logprobs": bool, "top_logprobs": lambda v: True, "stop": bool,
        "frequency_penalty": bool, "presence_penalty": bool, "logit_bias": bool, "audio": lambda v: True,
        "prediction": lambda v: True,
    }
    for name, refused in unsupported.items():
        if body.get(name) is not None and refused(body[name]):
            raise APIError(400, f"'{name}' is not supported: the answer is a tool-call list decoded under a grammar "
                                f"(greedy by default; use temperature, top_p and seed)", name, "unsupported_parameter")
    content = response_format(_field(body, "response_format", (dict,)), base)

    tools = _field(body, "tools", (list,))
    for i, tool in enumerate(tools or []):
        if not isinstance(tool, dict) or tool.get("type") != "function" or not isinstance(tool.get("function"), dict):
            raise APIError(400, f"tools[{i}]: expected {{\"type\": \"function\", \"function\": {{...}}}}, got "
                                f"{json.dumps(tool)[:80]}", "tools", "invalid_type")
    check_tool_limits(tools, base)  # before normalize_tools reads the schemas recursively
    normalized = normalize_tools(tools)  # a refused schema: ToolSchemaError naming the tool and keyword
    options = tool_choice_options(body.get("tool_choice"), _field(body, "parallel_tool_calls", (bool,), True),
                                  [t.name for t in normalized])

    settings = base
    changes: dict[str, Any] = {}
    for name, kinds in (("temperature", (int, float)), ("top_p", (int, float)), ("seed", (int,))):
        value = _field(body, name, kinds)
        if value is not None:
            changes[name] = value
    if changes.get("temperature", 0) > 2:
        raise APIError(400, f"expected 'temperature' in [0, 2], got {changes['temperature']}", "temperature", "invalid_value")
    reasoning = reasoning_switch(body)
    if reasoning is not None:
        changes["reasoning"] = reasoning
    for name in ("max_completion_tokens", "max_tokens"):
        value = _field(body, name, (int,))
        if value is not None:
            if value < 1:
                raise APIError(400, f"expected '{name}' >= 1, got {value}", name, "invalid_value")
            changes["max_tokens"] = value
            break
    if changes:
        try:
            settings = base.with_(**changes)
        except SettingsError as exc:
            raise APIError(400, str(exc), next(iter(changes)), "invalid_value") from None

    stream = _field(body, "stream", (bool,), False)
    stream_options = _field(body, "stream_options", (dict,), {})
    include_usage = stream_options.get("include_usage", False)
    if not isinstance(include_usage, bool):
        raise APIError(400, f"expected 'stream_options.include_usage' to be a boolean, got {json_type(include_usage)}",
                       "stream_options", "invalid_type")

    if get_format(tool_format).template_layout or (content is not None and not tools):
        # a JSON answer with no tools: the conversation as it is, not the card's tool-calling prompt
        messages, query = native_messages(body.get("messages"), base)
    else:
        messages, query = card_messages(body.get("messages"), tools, base)
    if content is not None:
        messages, options = with_instruction(messages, content), replace(options, content=content)
    return ChatRequest(messages, tools, settings, options, query, stream, include_usage, tool_format, content,
                       relaxed=tuple(relaxations(normalized)))


def reasoning_switch(body: dict[str, Any]) -> Optional[str]:
    """A reasoning model's thinking as the request sets it: ``reasoning_effort`` "none" (OpenAI) or
    ``chat_template_kwargs.enable_thinking`` false (vLLM, llama.cpp) turn it off, another effort or
    true turn it on; None where the request says nothing (the server's setting holds)."""
    effort = _field(body, "reasoning_effort", (str,))
    kwargs = _field(body, "chat_template_kwargs", (dict,), {})
    unknown = sorted(set(kwargs) - {"enable_thinking"})
    if unknown:
        raise APIError(400, f"'chat_template_kwargs': only 'enable_thinking' is supported, got {unknown}",
                       "chat_template_kwargs", "unsupported_parameter")
    enable = kwargs.get("enable_thinking")
    if enable is not None and not isinstance(enable, bool):
        raise APIError(400, f"expected 'chat_template_kwargs.enable_thinking' to be a boolean, got {json_type(enable)}",
                       "chat_template_kwargs", "invalid_type")
    if enable is not None:
        return "on" if enable else "off"
    if effort is not None:
        return "off" if effort == "none" else "on"
    return None


RELAXED_HEADER = "x-ondevice-relaxed"


def relaxed_headers(request: ChatRequest) -> dict[str, str]:
    """The response header naming the relaxed keywords (``tool:path:keyword; ...``), when there are any."""
    return {RELAXED_HEADER: describe_relaxed(request.relaxed)} if request.relaxed else {}


def response_format(value: Optional[dict[str, Any]], settings: Settings) -> Optional[ContentFormat]:
    """OpenAI's response_format (``text``, ``json_object``, ``json_schema``) as the content the grammar
    enforces (None: no response format); a schema the grammar cannot enforce is a 400 naming the
    keyword, one nesting deeper than `settings.max_schema_depth` a 400 naming the setting."""
    param = "response_format"
    kind = None if value is None else value.get("type")
    if kind in (None, "text"):
        return None
    if kind == "json_object":
        return content_format({"type": "object"}, "json_object")
    if kind != "json_schema":
        raise APIError(400, f"'{param}.type' must be \"text\", \"json_object\" or \"json_schema\", got {kind!r}", param,
                       "invalid_value")
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise APIError(400, f"expected '{param}.json_schema' to be an object {{\"name\", \"schema\", \"strict\"}}, got "
                            f"{json_type(spec)}", param, "invalid_type")
    name = spec.get("name", "response")
    if not isinstance(name, str) or not name:
        raise APIError(400, f"expected the response format's 'name' to be a non-empty string, got {json_type(name)}",
                       param, "invalid_type")
    schema = spec.get("schema", {})
    if not isinstance(schema, dict):
        raise APIError(400, f"expected the response format's 'schema' to be a JSON Schema object, got "
                            f"{json_type(schema)}", param, "invalid_type")
    if not isinstance(spec.get("strict", False), (bool, type(None))):
        raise APIError(400, f"expected the response format's 'strict' to be a boolean", param, "invalid_type")
    return content_format(schema, name, settings.max_schema_depth)  # enforced exactly whether strict or not


def tool_choice_options(choice: Any, parallel: bool, names: list[str]) -> CallOptions:
    """OpenAI's tool_choice and parallel_tool_calls as grammar options (what the grammar cannot honour: 400)."""
    min_calls, allowed = 0, None
    if choice is None or choice == "auto":
        pass
    elif choice == "none":
        return CallOptions(max_calls=0)
    elif choice == "required":
        min_calls = 1
    elif isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise APIError(400, "expected 'tool_choice' {\"type\": \"function\", \"function\": {\"name\": NAME}}, got "
                                f"{json.dumps(choice)[:120]}", "tool_choice", "invalid_type")
        min_calls, allowed = 1, (function["name"],)
    elif isinstance(choice, dict) and choice.get("type") == "allowed_tools":
        spec = choice.get("allowed_tools")
        if not isinstance(spec, dict) or spec.get("mode", "auto") not in ("auto", "required") \
                or not isinstance(spec.get("tools"), list):
            raise APIError(400, "expected 'tool_choice' {\"type\": \"allowed_tools\", \"allowed_tools\": {\"mode\": "
                                "\"auto\"|\"required\", \"tools\": [...]}}", "tool_choice", "invalid_type")
        picked = []
        for item in spec["tools"]:
            function = item.get("function") if isinstance(item, dict) else None
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str):
                raise APIError(400, f"tool_choice.allowed_tools.tools: expected {{\"type\": \"function\", \"function\": "
                                    f"{{\"name\": NAME}}}}, got {json.dumps(item)[:80]}", "tool_choice", "invalid_type")
            picked.append(name)
        min_calls, allowed = (1 if spec.get("mode") == "required" else 0), tuple(picked)
    else:
        raise APIError(400, "'tool_choice' must be \"auto\", \"none\", \"required\", {\"type\": \"function\", "
                            "\"function\": {\"name\": NAME}} or {\"type\": \"allowed_tools\", ...}; got "
                            f"{json.dumps(choice)[:120]}", "tool_choice", "invalid_value")
    if allowed is not None:
        unknown = [n for n in allowed if n not in names]
        if unknown:
            raise APIError(400, f"'tool_choice' names {unknown}, which are not among the request's tools {names}",
                           "tool_choice", "invalid_value")
    if min_calls and not names:
        raise APIError(400, f"'tool_choice' asks for a call, but the request has no 'tools'", "tool_choice",
                       "invalid_value")
    return CallOptions(min_calls=min_calls, max_calls=None if parallel else 1, allowed=allowed)


def _text(content: Any, where: str, allow_none: bool = False) -> Optional[str]:
    """A message's content as text: a string, or a list of text parts."""
    if content is None and allow_none:
        return None
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else json_type(part)
                raise APIError(400, f"{where}[{j}]: only text parts are supported, got {kind!r}", "messages",
                               "unsupported_content")
            texts.append(part["text"])
        return "".join(texts)
    raise APIError(400, f"expected {where} to be a string or a list of text parts, got {json_type(content)}",
                   "messages", "invalid_type")


def _assistant_calls(message: dict[str, Any], where: str, settings: Settings) -> list[dict[str, Any]]:
    calls = []
    for j, call in enumerate(message["tool_calls"]):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str):
            raise APIError(400, f"{where}.tool_calls[{j}]: expected {{\"type\": \"function\", \"function\": "
                                "{\"name\", \"arguments\"}}", "messages", "invalid_type")
        arguments = function.get("arguments", "{}")
        field = f"{where}.tool_calls[{j}].function.arguments"
        if isinstance(arguments, str):
            try:
                arguments = parse_json_body(arguments, settings, field) if arguments.strip() else {}
            except (JSONInputError, InputLimitError) as exc:
                raise APIError(400, str(exc), "messages", "invalid_value") from None
        if not isinstance(arguments, dict):
            raise APIError(400, f"{field}: expected a JSON object, got {json_type(arguments)}", "messages",
                           "invalid_type")
        check_arguments_depth(arguments, settings, field)
        calls.append({"name": function["name"], "arguments": arguments})
    return calls


def _read_turns(messages: Any, native: bool, settings: Settings) -> tuple[list[str], list[dict[str, Any]]]:
    """The request's messages checked: the system/developer texts, and the turns in order (user,
    assistant with its text and its `calls`, tool), ending with a user message or a tool result.
    A system message after the first turn is refused in the native format (its template puts the
    system text first); the card's layout adds it to its system prompt."""
    if not isinstance(messages, list) or not messages:
        raise APIError(400, f"expected 'messages' to be a non-empty array, got {json_type(messages)}", "messages",
                       "invalid_type")
    system: list[str] = []
    turns: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"expected {where} to be an object, got {json_type(message)}", "messages", "invalid_type")
        role = message.get("role")
        if role in ("system", "developer"):
            if turns and native:
                raise APIError(400, f"{where}: a system message after the first turn is not supported in the native "
                                    "tool format; put it first", "messages", "invalid_value")
            system.append(_text(message.get("content"), f"{where}.content") or "")
        elif role == "user":
            text = _text(message.get("content"), f"{where}.content") or ""
            if not text.strip():
                raise APIError(400, f"{where}: the user message is empty", "messages", "invalid_value")
            turns.append({"role": "user", "content": text})
        elif role == "assistant":
            if not turns:
                raise APIError(400, f"{where}: the conversation must start with a user message", "messages",
                               "invalid_value")
            tool_calls = message.get("tool_calls")
            if tool_calls is not None and not isinstance(tool_calls, list):
                raise APIError(400, f"expected {where}.tool_calls to be an array, got {json_type(tool_calls)}",
                               "messages", "invalid_type")
            reasoning = message.get("reasoning_content")
            if reasoning is not None and not isinstance(reasoning, str):
                raise APIError(400, f"expected {where}.reasoning_content to be a string, got {json_type(reasoning)}",
                               "messages", "invalid_type")
            turns.append({"role": "assistant",
                          "content": _text(message.get("content"), f"{where}.content", allow_none=True) or "",
                          "calls": _assistant_calls(message, where, settings) if tool_calls else [],
                          "reasoning": reasoning})
        elif role == "tool":
            if not turns:
                raise APIError(400, f"{where}: a tool result cannot open the conversation", "messages", "invalid_value")
            turns.append({"role": "tool", "content": _text(message.get("content"), f"{where}.content") or ""})
        else:
            raise APIError(400, f"{where}: unsupported role {role!r}; expected system, developer, user, assistant "
                                "or tool", "messages", "invalid_value")
    if not turns:
        raise APIError(400, "'messages' holds no user message", "messages", "invalid_value")
    if turns[-1]["role"] not in ("user", "tool"):
        raise APIError(400, f"the last message is from the {turns[-1]['role']}: end with a user message or a tool "
                            "result for the model to answer", "messages", "invalid_value")
    return system, turns


def _query(turns: list[dict[str, Any]]) -> Optional[str]:
    return turns[-1]["content"] if turns[-1]["role"] == "user" else None


def card_messages(messages: Any, tools: Optional[list[Any]], settings: Optional[Settings] = None) \
        -> tuple[list[Message], Optional[str]]:
    """The request's messages laid out as the card's conversation (see the module docstring), and
    the query (the last user text, when the last message is the user's); `settings` bounds the
    tool-call arguments in them."""
    system_extra, turns = _read_turns(messages, False, settings or Settings())
    laid_out: list[Message] = []
    for n, turn in enumerate(turns):
        content = turn["content"]
        if n == 0:  # always the user's: the tools go in the first user turn, as the card does
            content = render_user_prompt(content, tools)
        elif turn["role"] == "assistant":
            content = json.dumps(turn["calls"]) if turn["calls"] else (content or "[]")
        laid_out.append({"role": turn["role"], "content": content})
    system = SYSTEM_PROMPT + "".join("\n\n" + extra for extra in system_extra if extra.strip())
    return [{"role": "system", "content": system}] + laid_out, _query(turns)


def native_messages(messages: Any, settings: Optional[Settings] = None) -> tuple[list[Message], Optional[str]]:
    """The request's messages for a model prompted with its own chat template (native tool format):
    system/developer text as one system message, user and tool turns as sent, assistant tool calls
    as ``tool_calls`` with their arguments as objects; and the query (the last user text); `settings`
    bounds the tool-call arguments in them."""
    system, turns = _read_turns(messages, True, settings or Settings())
    laid_out: list[Message] = []
    for turn in turns:
        entry: dict[str, Any] = {"role": turn["role"], "content": turn["content"]}
        if turn.get("reasoning"):  # a reasoning model's thought, where its template writes it back
            entry["reasoning_content"] = turn["reasoning"]
        if turn.get("calls"):
            entry["tool_calls"] = [{"type": "function", "function": call} for call in turn["calls"]]
        laid_out.append(entry)
    head = [{"role": "system", "content": "\n\n".join(t for t in system if t.strip())}] if any(t.strip() for t in system) else []
    return head + laid_out, _query(turns)


def no_call_content(request: ChatRequest, result: CallResult) -> str:
    """The content of an answer without calls: a response format's JSON text, else what the format
    shows of the reply (the model's sentence, or "")."""
    if result.value is not None or (request.content is not None and result.message is not None):
        return result.message or ""
    return get_format(request.tool_format).reply_content(result.text)


def finish_reason(result: CallResult, has_calls: bool) -> str:
    if result.truncated or result.finish_reason == "budget":
        return "length"
    return "tool_calls" if has_calls else "stop"


def usage(result: CallResult) -> dict[str, Any]:
    prompt = int(result.timings.get("prompt_tokens", 0))
    completion = int(result.timings.get("sampled_tokens", 0) + result.timings.get("forced_tokens", 0))
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
            "completion_tokens_details": {"reasoning_tokens": int(result.timings.get("reasoning_tokens", 0))}}


def call_id() -> str:
    return "call_" + secrets.token_hex(12)


def completion(request: ChatRequest, model_id: str, result: CallResult) -> dict[str, Any]:
    """The chat.completion object for a finished answer."""
    calls = [(c.name, c.written_arguments()) for c in result.calls or []]
    message: dict[str, Any] = {"role": "assistant", "content": None if calls else no_call_content(request, result),
                               "refusal": None}
    if result.reasoning is not None:  # a reasoning model's thought (vLLM's and llama.cpp's field)
        message["reasoning_content"] = result.reasoning
    if calls:
        message["tool_calls"] = [
            {"id": call_id(), "type": "function", "function": {"name": name, "arguments": arguments}}
            for name, arguments in calls
        ]
    return {
        "id": request.id,
        "object": "chat.completion",
        "created": request.created,
        "model": model_id,
        "choices": [{"index": 0, "message": message, "finish_reason": finish_reason(result, bool(calls)), "logprobs": None}],
        "usage": usage(result),
    }


def chunk(request: ChatRequest, model_id: str, delta: dict[str, Any], finish: Optional[str] = None) -> dict[str, Any]:
    """One chat.completion.chunk with a single choice."""
    return {
        "id": request.id,
        "object": "chat.completion.chunk",
        "created": request.created,
        "model": model_id,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }
