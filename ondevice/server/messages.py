"""The Anthropic Messages API (``POST /v1/messages``, ``POST /v1/messages/count_tokens``): each request
is translated to the Chat Completions request it means (protocol.py checks and lays it out, the same
grammar enforces it), and the answer is written back as a Message or its stream of events.

- ``system`` (a string or text blocks) becomes the system message; ``messages`` alternate ``user``
  and ``assistant`` turns whose content is a string or blocks: ``text``, ``tool_use`` (an assistant's
  call, its ``input`` an object) and ``tool_result`` (a user's answer to a call: text content or text
  blocks, ``is_error``);
- ``tools`` are client tools (``name``, ``description``, ``input_schema``); ``tool_choice`` is
  ``auto``, ``any`` (a call is required), ``tool`` with ``name``, ``none``, each with
  ``disable_parallel_tool_use`` (at most one call);
- ``max_tokens`` is required, as in Anthropic's API; ``stop_sequences`` end a sentence answer at the
  first one (a call is never cut: the grammar decides where it ends); ``temperature``, ``top_p``;
- what this server cannot honour (images, documents, server tools, ``thinking``, a prefilled
  assistant turn, ``top_k``) is a 400 naming the field; errors come in Anthropic's shape
  ``{"type": "error", "error": {"type", "message"}}``.

No web framework here: the app (`app.py`) feeds it parsed JSON and sends what it returns.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass, replace
from typing import Any, Iterator, Optional

from ..api import CallResult
from ..formats import get_format
from ..settings import Settings
from .protocol import APIError, ChatRequest, finish_reason, json_type, parse_chat_request, usage
from ..formats.stream import ArgumentsDelta, CallStart, call_reader
from .tool_stream import find_stop

# Bounds on stop sequences: each is searched for in the text after every token.
MAX_STOP_SEQUENCES = 16
MAX_STOP_CHARS = 256

# Anthropic's error type for each HTTP status (its API reference, "Errors").
_ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 503: "overloaded_error"}

# Fields refused with the reason; anything else unknown to this module is ignored, as the Chat
# Completions route does (metadata, service_tier, cache_control: nothing here depends on them).
REFUSED = {
    "top_k": "top_k sampling is not supported: use temperature and top_p",
    "container": "containers (code execution) are not supported",
    "mcp_servers": "MCP servers are not supported: pass the tools in 'tools'",
}

# Block types an answer never holds and a request may not send (with the reason).
_UNSUPPORTED_BLOCKS = {
    "image": "image blocks are not supported: the model reads text only",
    "document": "document blocks are not supported: send the text as a text block",
    "thinking": "thinking blocks are not supported on this API (a reasoning model runs with its thought off "
                "here): use /v1/chat/completions, whose answers carry reasoning_content",
    "redacted_thinking": "thinking blocks are not supported on this API (a reasoning model runs with its thought "
                         "off here): use /v1/chat/completions, whose answers carry reasoning_content",
}


def error_body(error: APIError) -> dict[str, Any]:
    """An API error in Anthropic's shape; the message names the field."""
    kind = _ERROR_TYPES.get(error.status, "api_error")
    message = error.message
    if error.param and error.param not in message:
        message = f"{error.param}: {message}"
    return {"type": "error", "error": {"type": kind, "message": message}}


@dataclass
class MessagesRequest:
    """A checked Messages request: the chat request it means, and what the Message reports."""

    chat: ChatRequest
    id: str


def _blocks(content: Any, where: str) -> list[dict[str, Any]]:
    """A message's content as blocks (a string is one text block); unsupported kinds are 400s."""
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, list):
        raise APIError(400, f"expected {where} to be a string or an array of content blocks, got {json_type(content)}",
                       "messages", "invalid_type")
    for j, block in enumerate(content):
        kind = block.get("type") if isinstance(block, dict) else None
        if kind in _UNSUPPORTED_BLOCKS:
            raise APIError(400, f"{where}[{j}]: {_UNSUPPORTED_BLOCKS[kind]}", "messages", "unsupported_content")
        if not isinstance(kind, str):
            raise APIError(400, f"expected {where}[{j}] to be a content block object with a 'type', got "
                                f"{json.dumps(block)[:80]}", "messages", "invalid_type")
    return content


def _text_of(block: dict[str, Any], where: str) -> str:
    if not isinstance(block.get("text"), str):
        raise APIError(400, f"expected {where}.text to be a string, got {json_type(block.get('text'))}", "messages",
                       "invalid_type")
    return block["text"]


def _tool_result_text(block: dict[str, Any], where: str) -> str:
    """A tool_result's content as the tool message's text; an error result says so first."""
    content = block.get("content", "")
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            kind = part.get("type") if isinstance(part, dict) else json_type(part)
            if kind != "text":
                reason = _UNSUPPORTED_BLOCKS.get(kind, f"only text blocks are supported in a tool result, got {kind!r}")
                raise APIError(400, f"{where}.content[{j}]: {reason}", "messages", "unsupported_content")
            texts.append(_text_of(part, f"{where}.content[{j}]"))
        content = "\n".join(texts)
    if not isinstance(content, str):
        raise APIError(400, f"expected {where}.content to be a string or text blocks, got {json_type(content)}",
                       "messages", "invalid_type")
    is_error = block.get("is_error", False)
    if not isinstance(is_error, bool):
        raise APIError(400, f"expected {where}.is_error to be a boolean, got {json_type(is_error)}", "messages",
                       "invalid_type")
    # Chat templates have no error flag for tool output: the model reads it in the text.
    return f"Error: {content}" if is_error else content


def chat_messages(messages: Any, system: Any) -> tuple[list[dict[str, Any]], list[Optional[int]]]:
    """`messages` (and `system`) as Chat Completions messages, and for each the index of the
    Anthropic message it came from (None: the system message)."""
    out: list[dict[str, Any]] = []
    origin: list[Optional[int]] = []
    if system is not None:
        if isinstance(system, list):
            texts = []
            for j, block in enumerate(system):
                if not isinstance(block, dict) or block.get("type") != "text":
                    kind = block.get("type") if isinstance(block, dict) else json_type(block)
                    raise APIError(400, f"system[{j}]: only text blocks are supported, got {kind!r}", "system",
                                   "unsupported_content")
                if not isinstance(block.get("text"), str):
                    raise APIError(400, f"expected system[{j}].text to be a string", "system", "invalid_type")
                texts.append(block["text"])
            system = "\n\n".join(texts)
        if not isinstance(system, str):
            raise APIError(400, f"expected 'system' to be a string or an array of text blocks, got {json_type(system)}",
                           "system", "invalid_type")
        if system.strip():
            out.append({"role": "system", "content": system})
            origin.append(None)
    if not isinstance(messages, list) or not messages:
        raise APIError(400, f"expected 'messages' to be a non-empty array, got {json_type(messages)}", "messages",
                       "invalid_type")
    open_calls: set[str] = set()  # the tool_use ids of the last assistant turn
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise APIError(400, f"expected {where} to be an object, got {json_type(message)}", "messages", "invalid_type")
        role = message.get("role")
        blocks = _blocks(message.get("content"), f"{where}.content")
        if role == "assistant":
            texts, calls = [], []
            for j, block in enumerate(blocks):
                at = f"{where}.content[{j}]"
                if block["type"] == "text":
                    texts.append(_text_of(block, at))
                elif block["type"] == "tool_use":
                    if not isinstance(block.get("id"), str) or not isinstance(block.get("name"), str) \
                            or not isinstance(block.get("input"), dict):
                        raise APIError(400, f"{at}: a tool_use block needs 'id' and 'name' (strings) and 'input' (an "
                                            "object)", "messages", "invalid_type")
                    calls.append({"id": block["id"], "type": "function",
                                  "function": {"name": block["name"], "arguments": json.dumps(block["input"])}})
                else:
                    raise APIError(400, f"{at}: unsupported block type {block['type']!r} in an assistant message; "
                                        "expected text or tool_use", "messages", "unsupported_content")
            turn: dict[str, Any] = {"role": "assistant", "content": "".join(texts) or None}
            if calls:
                turn["tool_calls"] = calls
            out.append(turn)
            origin.append(i)
            open_calls = {call["id"] for call in calls}
        elif role == "user":
            texts = []
            for j, block in enumerate(blocks):
                at = f"{where}.content[{j}]"
                if block["type"] == "text":
                    texts.append(_text_of(block, at))
                elif block["type"] == "tool_result":
                    use_id = block.get("tool_use_id")
                    if not isinstance(use_id, str):
                        raise APIError(400, f"{at}: a tool_result block needs 'tool_use_id' (a string)", "messages",
                                       "invalid_type")
                    if use_id not in open_calls:
                        raise APIError(400, f"{at}: tool_use_id {use_id!r} matches no tool_use block of the assistant "
                                            "message just before", "messages", "invalid_value")
                    # Tool results come first (Anthropic's rule too), each a tool message of its own.
                    out.append({"role": "tool", "tool_call_id": use_id, "content": _tool_result_text(block, at)})
                    origin.append(i)
                else:
                    raise APIError(400, f"{at}: unsupported block type {block['type']!r} in a user message; expected "
                                        "text or tool_result", "messages", "unsupported_content")
            text = "".join(texts)
            if text.strip() or not any(b["type"] == "tool_result" for b in blocks):
                out.append({"role": "user", "content": text})  # empty text: a 400 from protocol.py
                origin.append(i)
            open_calls = set()
        else:
            raise APIError(400, f"{where}: unsupported role {role!r}; expected user or assistant (the system prompt is "
                                "the top-level 'system')", "messages", "invalid_value")
    if messages[-1].get("role") == "assistant":
        raise APIError(400, f"messages[{len(messages) - 1}]: the last message is from the assistant, and prefilling "
                            "the answer is not supported: end with a user message", "messages", "invalid_value")
    return out, origin


def _tool_choice(choice: Any) -> tuple[Any, Optional[bool]]:
    """Anthropic's tool_choice as Chat Completions' tool_choice and parallel_tool_calls."""
    if choice is None:
        return None, None
    if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
        raise APIError(400, "expected 'tool_choice' to be {\"type\": \"auto\"|\"any\"|\"none\"} or {\"type\": \"tool\", "
                            f"\"name\": NAME}}, got {json.dumps(choice)[:120]}", "tool_choice", "invalid_value")
    disable = choice.get("disable_parallel_tool_use", False)
    if not isinstance(disable, bool):
        raise APIError(400, f"expected 'tool_choice.disable_parallel_tool_use' to be a boolean, got {json_type(disable)}",
                       "tool_choice", "invalid_type")
    kind = choice["type"]
    if kind == "tool":
        if not isinstance(choice.get("name"), str):
            raise APIError(400, "'tool_choice' {\"type\": \"tool\"} needs 'name' (a string)", "tool_choice", "invalid_type")
        mapped: Any = {"type": "function", "function": {"name": choice["name"]}}
    else:
        mapped = {"auto": "auto", "any": "required", "none": "none"}[kind]
    return mapped, (False if disable else None)


def _tools(tools: Any) -> Optional[list[dict[str, Any]]]:
    """Client tools as Chat Completions function tools; server tools (a versioned `type`) are 400s."""
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise APIError(400, f"expected 'tools' to be an array, got {json_type(tools)}", "tools", "invalid_type")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise APIError(400, f"expected tools[{i}] to be an object, got {json_type(tool)}", "tools", "invalid_type")
        if tool.get("type") not in (None, "custom"):
            raise APIError(400, f"tools[{i}]: server tools ({tool.get('type')!r}) are not supported; pass client tools "
                                "with 'name' and 'input_schema'", "tools", "unsupported_tool")
        if not isinstance(tool.get("name"), str) or not isinstance(tool.get("input_schema"), dict):
            raise APIError(400, f"tools[{i}]: a tool needs 'name' (a string) and 'input_schema' (a JSON Schema object)",
                           "tools", "invalid_type")
        # In OpenAI's key order: the card's prompt shows the tools as sent, so the same tools prompt
        # the model the same way on either route.
        function = {"name": tool["name"]}
        if tool.get("description") is not None:
            function["description"] = tool["description"]
        function["parameters"] = tool["input_schema"]
        out.append({"type": "function", "function": function})
    return out


def _stop_sequences(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise APIError(400, "expected 'stop_sequences' to be an array of non-empty strings", "stop_sequences",
                       "invalid_type")
    if len(value) > MAX_STOP_SEQUENCES or any(len(s) > MAX_STOP_CHARS for s in value):
        raise APIError(400, f"'stop_sequences' holds at most {MAX_STOP_SEQUENCES} strings of at most {MAX_STOP_CHARS} "
                            "characters", "stop_sequences", "invalid_value")
    return tuple(value)


_MESSAGE_INDEX = re.compile(r"messages\[(\d+)\]")


def parse_messages_request(body: Any, model_id: str, base: Settings, tool_format: str = "card",
                           count_only: bool = False) -> MessagesRequest:
    """Check a Messages request and translate it to the chat request it means (APIError naming the
    field). `count_only`: a count_tokens request (no max_tokens, no sampling fields)."""
    if not isinstance(body, dict):
        raise APIError(400, f"expected the request body to be a JSON object, got {json_type(body)}", None, "invalid_type")
    for name, why in REFUSED.items():
        if body.get(name) is not None:
            raise APIError(400, f"'{name}' is not supported: {why}", name, "unsupported_parameter")
    thinking = body.get("thinking")
    if thinking is not None and not (isinstance(thinking, dict) and thinking.get("type") == "disabled"):
        raise APIError(400, "'thinking' is not supported on this API: a reasoning model runs with its thought off "
                            "here (only {\"type\": \"disabled\"} is accepted); use /v1/chat/completions, whose "
                            "answers carry reasoning_content", "thinking", "unsupported_parameter")
    output = body.get("output_config")
    if output is not None and (not isinstance(output, dict) or output.get("format") is not None):
        raise APIError(400, "'output_config.format' is not supported on /v1/messages: use a forced tool "
                            "(tool_choice {\"type\": \"tool\"}) or /v1/chat/completions' response_format",
                       "output_config", "unsupported_parameter")
    if not count_only:
        if body.get("max_tokens") is None:
            raise APIError(400, "'max_tokens' is required (the most tokens to generate)", "max_tokens",
                           "missing_required_parameter")
        temperature = body.get("temperature")
        if isinstance(temperature, (int, float)) and not isinstance(temperature, bool) and not 0 <= temperature <= 1:
            raise APIError(400, f"expected 'temperature' in [0, 1], got {temperature}", "temperature", "invalid_value")
    messages, origin = chat_messages(body.get("messages"), body.get("system"))
    tool_choice, parallel = _tool_choice(body.get("tool_choice"))
    chat = {
        "model": body.get("model"),
        "messages": messages,
        "tools": _tools(body.get("tools")),
        "tool_choice": tool_choice,
        "parallel_tool_calls": parallel,
        "reasoning_effort": "none",  # no extended thinking unless asked, as Anthropic's API (which is refused above)
    }
    if not count_only:
        chat.update({k: body.get(k) for k in ("max_tokens", "temperature", "top_p", "stream")})
    try:
        request = parse_chat_request({k: v for k, v in chat.items() if v is not None}, model_id, base, tool_format)
    except APIError as exc:
        # Name the request's own fields: the chat message at k came from Anthropic's message origin[k].
        def renumber(match: re.Match[str]) -> str:
            k = int(match.group(1))
            return f"messages[{origin[k]}]" if k < len(origin) and origin[k] is not None else "system"
        param = "tool_choice" if exc.param == "parallel_tool_calls" else exc.param
        raise APIError(exc.status, _MESSAGE_INDEX.sub(renumber, exc.message), param, exc.code, exc.type) from None
    request = replace(request, stop_sequences=() if count_only else _stop_sequences(body.get("stop_sequences")))
    return MessagesRequest(request, "msg_" + secrets.token_hex(12))


def new_tool_use_id() -> str:
    return "toolu_" + secrets.token_hex(12)


def answer_text(chat: ChatRequest, text: str) -> tuple[str, Optional[str]]:
    """The text block of an answer without calls, cut at its first stop sequence, and that sequence."""
    stop = find_stop(text, chat.stop_sequences) if chat.stop_sequences and not text.startswith("<") else None
    if stop is not None:
        text = text[:stop[0]]
    return get_format(chat.tool_format).reply_content(text), (stop[1] if stop else None)


def stop_reason(result: CallResult, has_calls: bool, stop_sequence: Optional[str]) -> str:
    if stop_sequence is not None:
        return "stop_sequence"
    return {"length": "max_tokens", "tool_calls": "tool_use"}.get(finish_reason(result, has_calls), "end_turn")


def _usage(result: CallResult) -> dict[str, int]:
    u = usage(result)
    return {"input_tokens": u["prompt_tokens"], "output_tokens": u["completion_tokens"]}


def _message(req: MessagesRequest, model_id: str, content: list[dict[str, Any]], reason: Optional[str],
             stop_sequence: Optional[str], usage_: dict[str, int]) -> dict[str, Any]:
    return {"id": req.id, "type": "message", "role": "assistant", "model": model_id, "content": content,
            "stop_reason": reason, "stop_sequence": stop_sequence, "usage": usage_}


def message_object(req: MessagesRequest, model_id: str, result: CallResult,
                   tool_use_ids: Optional[list[str]] = None) -> dict[str, Any]:
    """The Message for a finished answer: its tool_use blocks (ids as streamed, if given), else its
    text block (none when the text is empty)."""
    calls = [(c.name, c.written_arguments()) for c in result.calls or []]
    ids = list(tool_use_ids or [])
    ids += [new_tool_use_id() for _ in range(len(calls) - len(ids))]
    content: list[dict[str, Any]] = [{"type": "tool_use", "id": ids[i], "name": name, "input": json.loads(arguments)}
                                     for i, (name, arguments) in enumerate(calls)]
    stop_sequence = None
    if not calls:
        text, stop_sequence = answer_text(req.chat, result.text)
        if text:
            content.append({"type": "text", "text": text})
    return _message(req, model_id, content, stop_reason(result, bool(calls), stop_sequence), stop_sequence,
                    _usage(result))


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many characters at the end of `text` could begin a stop sequence (not sent yet)."""
    for n in range(min(len(text), max(map(len, stops), default=1) - 1), 0, -1):
        if any(stop.startswith(text[-n:]) for stop in stops):
            return n
    return 0


class MessageStream:
    """The Messages stream's events for one answer, fed the generated text as it grows: a text block
    whose deltas add up to the final text (held back where a stop sequence may begin, or trailing
    space), or one tool_use block per call with its input as ``input_json_delta`` pieces."""

    def __init__(self, req: MessagesRequest, model_id: str):
        self.req, self.model_id = req, model_id
        self.reader = call_reader(get_format(req.chat.tool_format))
        self.raw = ""  # the generated text so far
        self.stop_at: Optional[int] = None  # where the first stop sequence begins in it, once written
        self.sent = ""  # the text block's text sent so far
        self.blocks = 0  # content blocks started
        self.open = False  # the last block is not stopped yet
        self.text_block = False  # the open block is the text block
        self.ids: list[str] = []  # the tool_use ids sent

    @staticmethod
    def event(kind: str, **data: Any) -> str:
        return f"event: {kind}\ndata: {json.dumps({'type': kind, **data}, ensure_ascii=False)}\n\n"

    def start(self, input_tokens: int) -> Iterator[str]:
        yield self.event("message_start", message=_message(self.req, self.model_id, [], None, None,
                                                           {"input_tokens": input_tokens, "output_tokens": 0}))
        yield self.event("ping")

    def feed_reasoning(self, piece: str) -> Iterator[str]:
        return iter(())  # thinking is off on this API (see parse_messages_request)

    def feed(self, piece: str) -> Iterator[str]:
        self.raw += piece
        stops = self.req.chat.stop_sequences
        if stops and self.stop_at is None:  # a new match ends in the new piece: search no further back
            start = max(0, len(self.raw) - len(piece) - max(map(len, stops)) + 1)
            stop = find_stop(self.raw[start:], stops)
            self.stop_at = None if stop is None else start + stop[0]
        if self.raw and not self.raw.startswith("<"):  # a sentence: send what is final of it
            end = self.stop_at if self.stop_at is not None else len(self.raw) - _held_back(self.raw, stops)
            yield from self._text(self.raw[:end].strip())
        for ev in self.reader.feed(piece):
            if isinstance(ev, CallStart):
                yield from self._stop_block()
                self.ids.append(new_tool_use_id())
                yield from self._start_block({"type": "tool_use", "id": self.ids[-1], "name": ev.name, "input": {}})
            else:
                assert isinstance(ev, ArgumentsDelta)
                yield self.event("content_block_delta", index=self.blocks - 1,
                                 delta={"type": "input_json_delta", "partial_json": ev.text})

    def _start_block(self, block: dict[str, Any]) -> Iterator[str]:
        self.open, self.text_block = True, block["type"] == "text"
        self.blocks += 1
        yield self.event("content_block_start", index=self.blocks - 1, content_block=block)

    def _stop_block(self) -> Iterator[str]:
        if self.open:
            self.open = False
            yield self.event("content_block_stop", index=self.blocks - 1)

    def _text(self, text: str) -> Iterator[str]:
        """Send `text` (the text block so far, of which `sent` is a prefix) as a delta."""
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return
        if not self.text_block:
            yield from self._start_block({"type": "text", "text": ""})
        yield self.event("content_block_delta", index=self.blocks - 1,
                         delta={"type": "text_delta", "text": text[len(self.sent):]})
        self.sent = text

    def finish(self, result: CallResult) -> Iterator[str]:
        message = message_object(self.req, self.model_id, result, self.ids)
        for block in message["content"]:
            if block["type"] == "text":
                yield from self._text(block["text"])  # what was held back (or all of it, if it began with "<")
        yield from self._stop_block()
        yield self.event("message_delta", delta={"stop_reason": message["stop_reason"],
                                                 "stop_sequence": message["stop_sequence"]}, usage=message["usage"])
        yield self.event("message_stop")

    def error(self, error: APIError) -> Iterator[str]:
        yield self.event("error", error=error_body(error)["error"])
