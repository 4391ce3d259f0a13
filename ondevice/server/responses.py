"""The OpenAI Responses API (``POST /v1/responses``): each request is translated to the
Chat Completions request it means (protocol.py checks and lays it out, the same grammar enforces
it), and the answer is written back as a Response object or its stream of events.

- ``input``: a string (one user message) or items: messages (``user``/``system``/``developer``/
  ``assistant``, text content or ``input_text``/``output_text`` parts), ``function_call`` (becomes
  the assistant turn's tool call), ``function_call_output`` (a tool result); ``instructions``
  becomes the system message;
- ``tools``: function tools in the flat layout (``{"type": "function", "name", "parameters"}``);
  ``tool_choice``, ``parallel_tool_calls`` as in Chat Completions; ``text.format`` a response
  format (``json_schema`` flat, ``json_object``, ``text``); ``max_output_tokens`` the budget;
- ``store`` (default true, as OpenAI's): the finished response is kept in the server's bounded
  in-memory store (response_store.py) under the caller's API key; ``previous_response_id`` continues
  from a stored response: its input and output come before this request's ``input`` (its
  ``instructions`` do not carry over, as in OpenAI's API). ``conversation`` is a 400.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from ..api import CallResult
from ..formats import get_format
from ..settings import Settings
from .protocol import APIError, ChatRequest, json_type, finish_reason, no_call_content, parse_chat_request, usage
from ..formats.stream import ArgumentsDelta, CallStart, call_reader
from .tool_stream import ContentStream

REFUSED = {
    "conversation": "this server stores no conversations: continue with 'previous_response_id', or send the whole "
                    "conversation as 'input'",
    "background": "background responses are not supported",
    "prompt": "stored prompts are not supported: send 'instructions' and 'input'",
}


@dataclass
class ResponsesRequest:
    """A checked Responses request: the chat request it means, and what the Response echoes."""

    chat: ChatRequest
    body: dict[str, Any]
    id: str
    created: int
    store: bool = False  # keep the finished response (the `store` field, true unless the client says false)
    previous_response_id: Optional[str] = None
    input_items: list[Any] = field(default_factory=list)  # the whole conversation before the answer, as items


def _text_parts(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        texts = []
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") not in ("input_text", "output_text", "text") \
                    or not isinstance(part.get("text"), str):
                kind = part.get("type") if isinstance(part, dict) else json_type(part)
                raise APIError(400, f"{where}[{j}]: only text parts (input_text, output_text) are supported, got "
                                    f"{kind!r}", "input", "unsupported_content")
            texts.append(part["text"])
        return "".join(texts)
    raise APIError(400, f"expected {where} to be a string or a list of text parts, got {json_type(content)}", "input",
                   "invalid_type")


def input_items(items: Any) -> list[Any]:
    """`input` as a list of items (a string is one user message); a 400 naming `input` otherwise."""
    if isinstance(items, str):
        return [{"type": "message", "role": "user", "content": items}]
    if not isinstance(items, list) or not items:
        raise APIError(400, f"expected 'input' to be a string or a non-empty array of items, got {json_type(items)}",
                       "input", "invalid_type")
    return items


def input_messages(items: Any, instructions: Optional[str], history: Optional[list[Any]] = None) \
        -> list[dict[str, Any]]:
    """`input` (and `instructions`) as Chat Completions messages; `history` (a previous response's
    conversation, as items) comes before `input`, after the instructions."""
    messages: list[dict[str, Any]] = []
    if instructions is not None:
        if not isinstance(instructions, str):
            raise APIError(400, f"expected 'instructions' to be a string, got {json_type(instructions)}",
                           "instructions", "invalid_type")
        if instructions.strip():
            messages.append({"role": "system", "content": instructions})
    # The history was checked when it was sent; its items are named apart so that input[i] stays the
    # client's own index.
    _add_messages(messages, history or [], "the previous response's item")
    _add_messages(messages, input_items(items), "input")
    return messages


def _add_messages(messages: list[dict[str, Any]], items: list[Any], name: str) -> None:
    thought: Optional[str] = None  # a reasoning item's text: the next assistant turn's reasoning_content
    for i, item in enumerate(items):
        where = f"{name}[{i}]"
        if not isinstance(item, dict):
            raise APIError(400, f"expected {where} to be an object, got {json_type(item)}", "input", "invalid_type")
        kind = item.get("type", "message" if "role" in item else None)
        if kind == "message":
            role = item.get("role")
            if role not in ("user", "system", "developer", "assistant"):
                raise APIError(400, f"{where}: unsupported role {role!r}; expected user, system, developer or assistant",
                               "input", "invalid_value")
            messages.append({"role": role, "content": _text_parts(item.get("content"), f"{where}.content")})
            if role == "assistant" and thought:
                messages[-1]["reasoning_content"], thought = thought, None
        elif kind == "function_call":
            name, arguments, call_id = item.get("name"), item.get("arguments", "{}"), item.get("call_id")
            if not isinstance(name, str) or not isinstance(arguments, str) or not isinstance(call_id, str):
                raise APIError(400, f"{where}: a function_call item needs 'call_id', 'name' and 'arguments' (strings)",
                               "input", "invalid_type")
            call = {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}
            if messages and messages[-1]["role"] == "assistant":  # calls after the turn's text: the same turn
                messages[-1].setdefault("tool_calls", []).append(call)
            else:
                messages.append({"role": "assistant", "content": None, "tool_calls": [call]})
            if thought:
                messages[-1]["reasoning_content"], thought = thought, None
        elif kind == "function_call_output":
            output = item.get("output")
            if not isinstance(item.get("call_id"), str):
                raise APIError(400, f"{where}: a function_call_output item needs 'call_id' (a string)", "input",
                               "invalid_type")
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": _text_parts(output, f"{where}.output")})
        elif kind == "reasoning":  # the model's thought goes back with the turn it preceded (Qwen3's template shows it)
            parts = item.get("content") if isinstance(item.get("content"), list) else []
            thought = "".join(p.get("text", "") for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str))
        else:
            raise APIError(400, f"{where}: unsupported item type {kind!r}; expected message, function_call or "
                                "function_call_output", "input", "invalid_value")


def _chat_tools(tools: Any) -> Optional[list[Any]]:
    if tools is None:
        return None
    if not isinstance(tools, list):
        raise APIError(400, f"expected 'tools' to be an array, got {json_type(tools)}", "tools", "invalid_type")
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict) or tool.get("type") != "function":
            kind = tool.get("type") if isinstance(tool, dict) else json_type(tool)
            raise APIError(400, f"tools[{i}]: only function tools are supported, got {kind!r}", "tools",
                           "unsupported_tool")
        if isinstance(tool.get("function"), dict):  # the Chat Completions layout: accepted as it is
            out.append(tool)
            continue
        function = {k: tool[k] for k in ("name", "description", "parameters", "strict") if tool.get(k) is not None}
        out.append({"type": "function", "function": function})
    return out


def _chat_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and choice.get("type") == "function" and "function" not in choice:
        return {"type": "function", "function": {"name": choice.get("name")}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools" and "allowed_tools" not in choice:
        tools = [{"type": "function", "function": {"name": t.get("name")}} if isinstance(t, dict) else t
                 for t in choice.get("tools") or []]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": tools}}
    return choice


def _chat_format(text: Any) -> Optional[dict[str, Any]]:
    if text is None:
        return None
    if not isinstance(text, dict):
        raise APIError(400, f"expected 'text' to be an object, got {json_type(text)}", "text", "invalid_type")
    fmt = text.get("format")
    if fmt is None or not isinstance(fmt, dict) or fmt.get("type") != "json_schema":
        return fmt
    return {"type": "json_schema", "json_schema": {k: fmt[k] for k in ("name", "schema", "strict") if k in fmt}}


def parse_responses_request(body: Any, model_id: str, base: Settings, tool_format: str = "card",
                            history: Optional[Callable[[str], Optional[list[Any]]]] = None) -> ResponsesRequest:
    """Check a Responses request and translate it to the chat request it means (APIError naming the field).
    `history(id)` is the conversation a stored response continues (its input, then its output), None
    when there is none by that id for this caller; without `history`, nothing is stored."""
    if not isinstance(body, dict):
        raise APIError(400, f"expected the request body to be a JSON object, got {json_type(body)}", None, "invalid_type")
    for name, why in REFUSED.items():
        if body.get(name) not in (None, False):
            raise APIError(400, f"'{name}' is not supported: {why}", name, "unsupported_parameter")
    store = body.get("store", True)
    if not isinstance(store, bool) and store is not None:
        raise APIError(400, f"expected 'store' to be a boolean, got {json_type(store)}", "store", "invalid_type")
    previous_id = body.get("previous_response_id")
    previous: list[Any] = []
    if previous_id is not None:
        if not isinstance(previous_id, str):
            raise APIError(400, f"expected 'previous_response_id' to be a string, got {json_type(previous_id)}",
                           "previous_response_id", "invalid_type")
        found = history(previous_id) if history is not None else None
        if found is None:
            raise APIError(400, f"previous response with id {previous_id!r} not found: it was never stored (store: "
                                "false), was deleted or evicted from the server's bounded store (--responses-store), "
                                "or belongs to another API key; send the whole conversation as 'input' instead",
                           "previous_response_id", "previous_response_not_found")
        previous = found
    chat = {
        "model": body.get("model"),
        "messages": input_messages(body.get("input"), body.get("instructions"), previous),
        "tools": _chat_tools(body.get("tools")),
        "tool_choice": _chat_tool_choice(body.get("tool_choice")),
        "parallel_tool_calls": body.get("parallel_tool_calls"),
        "response_format": _chat_format(body.get("text")),
        "temperature": body.get("temperature"),
        "top_p": body.get("top_p"),
        "max_tokens": body.get("max_output_tokens"),
        "reasoning_effort": _effort(body.get("reasoning")),
        "stream": body.get("stream"),
    }
    try:
        request = parse_chat_request({k: v for k, v in chat.items() if v is not None}, model_id, base, tool_format)
    except APIError as exc:
        renames = {"max_tokens": "max_output_tokens", "messages": "input", "response_format": "text.format"}
        if exc.param in renames:
            exc.message = exc.message.replace("'max_tokens'", "'max_output_tokens'")
            exc.param = renames[exc.param]
        raise
    return ResponsesRequest(request, body, "resp_" + secrets.token_hex(12), request.created,
                            store=store is not False and history is not None, previous_response_id=previous_id,
                            input_items=previous + input_items(body.get("input")))


def _effort(reasoning: Any) -> Optional[str]:
    """`reasoning.effort` ("none" turns a reasoning model's thinking off)."""
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict) or not isinstance(reasoning.get("effort", ""), (str, type(None))):
        raise APIError(400, f"expected 'reasoning' to be an object with an 'effort' string, got {json_type(reasoning)}",
                       "reasoning", "invalid_type")
    return reasoning.get("effort")


def _usage(result: CallResult) -> dict[str, Any]:
    u = usage(result)
    return {"input_tokens": u["prompt_tokens"], "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": u["completion_tokens"],
            "output_tokens_details": {"reasoning_tokens": u["completion_tokens_details"]["reasoning_tokens"]},
            "total_tokens": u["total_tokens"]}


def _message_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    return {"type": "message", "id": item_id, "role": "assistant", "status": status, "content": content}


def _reasoning_item(item_id: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "reasoning", "id": item_id, "summary": [], "content": [{"type": "reasoning_text", "text": text}],
            "status": status}


def _call_item(item_id: str, call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": item_id, "call_id": call_id, "name": name, "arguments": arguments,
            "status": status}


def response_object(req: ResponsesRequest, model_id: str, output: list[dict[str, Any]],
                    result: Optional[CallResult] = None) -> dict[str, Any]:
    """The Response object (in progress while `result` is None)."""
    body = req.body
    status = "in_progress"
    incomplete = None
    if result is not None:
        status = "completed"
        if finish_reason(result, False) == "length":
            status, incomplete = "incomplete", {"reason": "max_output_tokens"}
    text = body.get("text") if isinstance(body.get("text"), dict) else {}
    return {
        "id": req.id, "object": "response", "created_at": req.created, "status": status, "error": None,
        "incomplete_details": incomplete, "instructions": body.get("instructions"),
        "max_output_tokens": body.get("max_output_tokens"), "model": model_id, "output": output,
        "parallel_tool_calls": body.get("parallel_tool_calls", True),
        "previous_response_id": req.previous_response_id, "reasoning": None, "store": req.store,
        "temperature": body.get("temperature", 0.0),
        "text": {"format": text.get("format") or {"type": "text"}},
        "tool_choice": body.get("tool_choice") or "auto", "tools": body.get("tools") or [],
        "top_p": body.get("top_p", 1.0), "truncation": "disabled", "metadata": body.get("metadata") or {},
        "usage": _usage(result) if result is not None else None, "user": None,
    }


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(12)}"


def final_output(req: ResponsesRequest, result: CallResult, call_ids: Optional[list[tuple[str, str]]] = None,
                 message_id: Optional[str] = None, reasoning_id: Optional[str] = None) -> list[dict[str, Any]]:
    """The output items of a finished answer: a reasoning model's thought, then its calls, else one
    message (ids as streamed, if given)."""
    calls = [(c.name, c.written_arguments()) for c in result.calls or []]
    # an empty thought (reasoning off, or closed at once) is no item: the stream sent none either
    items = [_reasoning_item(reasoning_id or new_id("rs"), result.reasoning)] if result.reasoning else []
    for i, (name, arguments) in enumerate(calls):
        item_id, call_id = call_ids[i] if call_ids and i < len(call_ids) else (new_id("fc"), new_id("call"))
        items.append(_call_item(item_id, call_id, name, arguments))
    if not calls:
        items.append(_message_item(message_id or new_id("msg"), no_call_content(req.chat, result)))
    return items


class EventWriter:
    """The Responses stream's events for one answer, fed the generated text as it grows."""

    def __init__(self, req: ResponsesRequest, model_id: str,
                 keep: Optional[Callable[[dict[str, Any]], dict[str, Any]]] = None):
        self.req, self.model_id = req, model_id
        self.keep = keep  # stores the finished response; what it answers is what the last event says
        self.seq = 0
        self.reader = call_reader(get_format(req.chat.tool_format))
        self.text = ContentStream(True, get_format(req.chat.tool_format))  # anything that is not a call is the message's text
        self.calls: list[tuple[str, str, str, str]] = []  # item id, call id, name, arguments so far
        self.open_call = False  # the last call's item is not yet done
        self.message_id: Optional[str] = None
        self.message_text = ""
        self.reasoning_id: Optional[str] = None  # a reasoning model's thought: the first output item
        self.reasoning_text = ""
        self.reasoning_open = False
        self.base = 0  # the answer's first output index (1 after a thought)

    def event(self, kind: str, **data: Any) -> str:
        data = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

    def start(self) -> Iterator[str]:
        response = response_object(self.req, self.model_id, [])
        yield self.event("response.created", response=response)
        yield self.event("response.in_progress", response=response)

    def feed_reasoning(self, piece: str) -> Iterator[str]:
        if self.reasoning_id is None:
            self.reasoning_id, self.reasoning_open, self.base = new_id("rs"), True, 1
            yield self.event("response.output_item.added", output_index=0,
                             item=_reasoning_item(self.reasoning_id, "", "in_progress"))
        self.reasoning_text += piece
        yield self.event("response.reasoning_text.delta", item_id=self.reasoning_id, output_index=0, content_index=0,
                         delta=piece)

    def _close_reasoning(self) -> Iterator[str]:
        if not self.reasoning_open:
            return
        self.reasoning_open = False
        yield self.event("response.reasoning_text.done", item_id=self.reasoning_id, output_index=0, content_index=0,
                         text=self.reasoning_text)
        yield self.event("response.output_item.done", output_index=0,
                         item=_reasoning_item(self.reasoning_id, self.reasoning_text))

    def feed(self, piece: str) -> Iterator[str]:
        if piece:
            yield from self._close_reasoning()
        if text := self.text.feed(piece):
            if self.message_id is None:
                yield from self._open_message()
            self.message_text += text
            yield self.event("response.output_text.delta", item_id=self.message_id, output_index=self.base,
                             content_index=0, delta=text, logprobs=[])
        for ev in self.reader.feed(piece):
            if isinstance(ev, CallStart):
                yield from self._close_call()
                item = _call_item(new_id("fc"), new_id("call"), ev.name, "", "in_progress")
                self.calls.append((item["id"], item["call_id"], ev.name, ""))
                self.open_call = True
                yield self.event("response.output_item.added", output_index=self.base + ev.index, item=item)
            else:
                assert isinstance(ev, ArgumentsDelta)
                item_id, call_id, name, arguments = self.calls[ev.index]
                self.calls[ev.index] = (item_id, call_id, name, arguments + ev.text)
                yield self.event("response.function_call_arguments.delta", item_id=item_id,
                                 output_index=self.base + ev.index, delta=ev.text)

    def _open_message(self, item_id: Optional[str] = None) -> Iterator[str]:
        self.message_id = item_id or new_id("msg")
        yield self.event("response.output_item.added", output_index=self.base,
                         item=_message_item(self.message_id, "", "in_progress"))
        yield self.event("response.content_part.added", item_id=self.message_id, output_index=self.base, content_index=0,
                         part={"type": "output_text", "text": "", "annotations": [], "logprobs": []})

    def _close_call(self) -> Iterator[str]:
        if not self.open_call:
            return
        self.open_call = False
        index = len(self.calls) - 1
        item_id, call_id, name, arguments = self.calls[index]
        yield self.event("response.function_call_arguments.done", item_id=item_id, output_index=self.base + index,
                         name=name, arguments=arguments)
        yield self.event("response.output_item.done", output_index=self.base + index,
                         item=_call_item(item_id, call_id, name, arguments))

    def finish(self, result: CallResult) -> Iterator[str]:
        yield from self._close_reasoning()
        yield from self._close_call()
        call_ids = [(item_id, call_id) for item_id, call_id, _, _ in self.calls]
        output = final_output(self.req, result, call_ids, self.message_id, self.reasoning_id)
        if output[-1]["type"] == "message":  # the message: as streamed, closed with the final text
            text = output[-1]["content"][0]["text"]
            if self.message_id is None:
                yield from self._open_message(output[-1]["id"])
                if text:
                    yield self.event("response.output_text.delta", item_id=self.message_id, output_index=self.base,
                                     content_index=0, delta=text, logprobs=[])
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            yield self.event("response.output_text.done", item_id=self.message_id, output_index=self.base, content_index=0,
                             text=text, logprobs=[])
            yield self.event("response.content_part.done", item_id=self.message_id, output_index=self.base, content_index=0,
                             part=part)
            yield self.event("response.output_item.done", output_index=self.base, item=output[-1])
        response = response_object(self.req, self.model_id, output, result)
        if self.keep is not None:
            response = self.keep(response)
        kind = "response.completed" if response["status"] == "completed" else "response.incomplete"
        yield self.event(kind, response=response)

    def error(self, error: APIError) -> Iterator[str]:
        yield self.event("error", code=error.code, message=error.message, param=error.param)
