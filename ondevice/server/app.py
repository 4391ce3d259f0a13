"""The HTTP side of `ondevice serve`: a Starlette app on uvicorn.

Starlette rather than FastAPI: the request checks must answer in OpenAI's error shape and name the
field, which we do by hand in `protocol.py`; FastAPI's pydantic validation would answer 422 in its
own shape, and adds pydantic for nothing else. uvicorn is the ASGI server Starlette documents.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import socket
import sys
import threading
from typing import Any, AsyncIterator, Callable, Iterator, Optional

import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..api import CallResult, ToolCaller
from ..formats import get_format
from ..errors import OndeviceError
from ..schema.limits import parse_json_body
from .protocol import APIError, ChatRequest, call_id, chunk, completion, error_from_exception, finish_reason, \
    no_call_content, parse_chat_request, relaxed_headers, usage
from .messages import MessageStream, MessagesRequest, error_body, message_object, parse_messages_request
from .response_store import ResponseStore, stored_response
from .responses import EventWriter, ResponsesRequest, final_output, parse_responses_request, response_object
from ..formats.stream import ArgumentsDelta, CallStart, call_reader
from .tool_stream import ContentStream
from .worker import DONE, Job, ModelWorker, Thought

class ServeError(OndeviceError, RuntimeError):
    """The server cannot start (the address is taken, not allowed, ...)."""


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.to_dict(), status_code=error.status)


def _anthropic_error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error_body(error), status_code=error.status)


def _errors_for(request: Request) -> Callable[[APIError], JSONResponse]:
    """The error shape of a path: Anthropic's under /v1/messages, OpenAI's elsewhere."""
    return _anthropic_error_response if request.url.path.startswith("/v1/messages") else _error_response


async def _written(writer: "EventWriter | MessageStream", first: Iterator[str], job: Job, item: Any) -> AsyncIterator[str]:
    """A stream writer's events (the Responses or the Messages API): `first`, then each text piece
    fed as it comes, then the finish, or the error event if the request failed."""
    try:
        for event in first:
            yield event
        while item is not DONE:
            for event in (writer.feed_reasoning(item.text) if isinstance(item, Thought) else writer.feed(item)):
                yield event
            item = await job.pieces.get()
        try:
            result: CallResult = await job.future
        except Exception as exc:
            for event in writer.error(error_from_exception(exc)):
                yield event
            return
        for event in writer.finish(result):
            yield event
    finally:
        job.cancelled.set()


class ChatServer:
    """The routes, around one model worker."""

    def __init__(self, caller: ToolCaller, model_id: str, api_key: Optional[str] = None, max_queue: int = 64,
                 store: Optional[ResponseStore] = None):
        self.caller = caller
        self.model_id = model_id
        self.api_key = api_key
        self.worker = ModelWorker(caller, max_queue)
        self.store = store if store is not None else ResponseStore()
        self.created = int(caller.model.path.stat().st_mtime)

    def app(self) -> Starlette:
        async def on_http_error(request: Request, exc: Exception) -> Response:
            assert isinstance(exc, HTTPException)
            code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
            return _errors_for(request)(APIError(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                                                 None, code))

        async def on_error(request: Request, exc: Exception) -> Response:
            return _errors_for(request)(error_from_exception(exc))

        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
                Route("/v1/responses", self.responses, methods=["POST"]),
                Route("/v1/messages", self.messages, methods=["POST"]),
                Route("/v1/messages/count_tokens", self.count_tokens, methods=["POST"]),
                Route("/v1/responses/{response_id}", self.stored, methods=["GET", "DELETE"]),
                Route("/v1/models", self.models, methods=["GET"]),
                Route("/v1/models/{model_id:path}", self.model, methods=["GET"]),
                Route("/health", self.health, methods=["GET"]),
            ],
            exception_handlers={HTTPException: on_http_error, Exception: on_error},
        )

    # --- routes ---------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": self.model_id, **self.worker.status()})

    def _model_object(self) -> dict[str, Any]:
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "ondevice"}

    async def models(self, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        return JSONResponse({"object": "list", "data": [self._model_object()]})

    async def model(self, request: Request) -> Response:
        if (denied := self._check_key(request)) is not None:
            return denied
        if request.path_params["model_id"] != self.model_id:
            return _error_response(APIError(404, f"the model {request.path_params['model_id']!r} does not exist here: "
                                                 f"this server serves \"{self.model_id}\"", "model", "model_not_found"))
        return JSONResponse(self._model_object())

    async def chat_completions(self, request: Request) -> Response:
        return await self._respond(request, parse_chat_request, lambda parsed: parsed,
                                   lambda parsed, result: completion(parsed, self.model_id, result), self._events)

    async def responses(self, request: Request) -> Response:
        owner = self._owner(request)

        def parse(body: Any, *args: Any) -> ResponsesRequest:
            return parse_responses_request(body, *args, history=lambda response_id: self._history(owner, response_id))

        def answer(parsed: ResponsesRequest, result: CallResult) -> dict[str, Any]:
            response = response_object(parsed, self.model_id, final_output(parsed, result), result)
            return self._keep(owner, parsed, response)

        return await self._respond(request, parse, lambda parsed: parsed.chat, answer,
                                   lambda parsed, job, item: self._response_events(parsed, job, item, owner))

    async def stored(self, request: Request) -> Response:
        """GET or DELETE /v1/responses/{id}: a response this API key stored."""
        if (denied := self._check_key(request)) is not None:
            return denied
        owner, response_id = self._owner(request), request.path_params["response_id"]
        if request.method == "DELETE":
            if self.store.delete(owner, response_id):
                return JSONResponse({"id": response_id, "object": "response.deleted", "deleted": True})
        else:
            if request.query_params.get("stream", "false").lower() not in ("false", "0"):
                return _error_response(APIError(400, "'stream' is not supported when retrieving a response: "
                                                     "responses are stored finished", "stream",
                                                "unsupported_parameter"))
            if (entry := self.store.get(owner, response_id)) is not None:
                return Response(entry.response, media_type="application/json")
        return _error_response(APIError(404, f"response with id {response_id!r} not found: it was never stored "
                                             "(store: false), was deleted or evicted from the server's bounded store "
                                             "(--responses-store), or belongs to another API key", None,
                                        "response_not_found"))

    async def messages(self, request: Request) -> Response:
        return await self._respond(request, parse_messages_request, lambda parsed: parsed.chat,
                                   lambda parsed, result: message_object(parsed, self.model_id, result),
                                   self._message_events)

    async def count_tokens(self, request: Request) -> Response:
        """The prompt tokens a Messages request would take (Anthropic's count_tokens); nothing is decoded."""
        if (denied := self._check_key(request)) is not None:
            return denied
        try:
            parsed = parse_messages_request(await self._json(request), self.model_id, self.caller.settings,
                                            self.caller.tool_format(), count_only=True)
            return JSONResponse({"input_tokens": await asyncio.to_thread(self._count_tokens, parsed.chat)})
        except Exception as exc:  # bad input: 4xx naming the field, never a crash
            return _anthropic_error_response(error_from_exception(exc))

    def _count_tokens(self, chat: ChatRequest) -> int:
        """The prompt's length, rendered and tokenized as the engine does before decoding (on a worker
        thread: the lock waits for the model thread's current step)."""
        tools = get_format(chat.tool_format).template_tools(chat.tools)
        with self.caller.lock:
            self.caller.check_open()
            return len(self.caller.tokenize_prompt(chat.messages, chat.settings.date_string, tools)[1])

    async def _respond(self, request: Request, parse: Callable[..., Any], chat_of: Callable[[Any], ChatRequest],
                       answer: Callable[[Any, CallResult], dict[str, Any]],
                       events: Callable[[Any, Job, Any], AsyncIterator[str]]) -> Response:
        """One API request: `parse` checks the body, `chat_of` is the chat request it means, `answer`
        writes the finished result, `events` the stream."""
        if (denied := self._check_key(request)) is not None:
            return denied
        error_response = _errors_for(request)  # this route's error shape
        try:
            parsed = parse(await self._json(request), self.model_id, self.caller.settings, self.caller.tool_format())
        except Exception as exc:  # bad input: 4xx naming the field, never a crash
            return error_response(error_from_exception(exc))
        chat = chat_of(parsed)

        loop = asyncio.get_running_loop()
        job = Job(chat, loop, loop.create_future(), asyncio.Queue() if chat.stream else None)
        try:
            self.worker.submit(job)
        except APIError as exc:
            return error_response(exc)

        disconnect = asyncio.ensure_future(_wait_disconnect(request))
        try:
            if not chat.stream:
                await asyncio.wait({job.future, disconnect}, return_when=asyncio.FIRST_COMPLETED)
                if not job.future.done():  # the client went away: free its place
                    job.cancelled.set()
                    return Response(status_code=499)
                try:
                    result = job.future.result()
                except Exception as exc:
                    return error_response(error_from_exception(exc))
                return JSONResponse(answer(parsed, result), headers=relaxed_headers(chat))
            # Streaming: wait for the first text (or the end) so that errors found before the first
            # token (a schema, the context) still get their 4xx status.
            first = asyncio.ensure_future(job.pieces.get())
            await asyncio.wait({first, disconnect}, return_when=asyncio.FIRST_COMPLETED)
            if not first.done():
                first.cancel()
                job.cancelled.set()
                return Response(status_code=499)
            item = first.result()
            if item is DONE and job.future.done() and job.future.exception() is not None:
                return error_response(error_from_exception(job.future.exception()))
        finally:
            disconnect.cancel()
        return StreamingResponse(events(parsed, job, item), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", **relaxed_headers(chat)})

    async def _response_events(self, request: ResponsesRequest, job: Job, item: Any, owner: str) \
            -> AsyncIterator[str]:
        """The Responses stream: created, then each output item's events as the text grows, completed."""
        writer = EventWriter(request, self.model_id, lambda response: self._keep(owner, request, response))
        async for event in _written(writer, writer.start(), job, item):
            yield event

    async def _message_events(self, request: MessagesRequest, job: Job, item: Any) -> AsyncIterator[str]:
        """The Messages stream: message_start, the content blocks as the text grows, message_delta, message_stop."""
        writer = MessageStream(request, self.model_id)
        try:
            # message_start reports the prompt's tokens, as Anthropic's does; the prompt is rendered
            # again for it (the engine's count comes only with the result).
            try:
                input_tokens = await asyncio.to_thread(self._count_tokens, request.chat)
            except Exception:  # the count is a courtesy: message_delta has the engine's own
                input_tokens = 0
        except BaseException:  # the client went away during the count
            job.cancelled.set()
            raise
        async for event in _written(writer, writer.start(input_tokens), job, item):
            yield event

    async def _events(self, request: ChatRequest, job: Job, item: Any) -> AsyncIterator[str]:
        """The SSE stream: role, then each call's start and argument deltas, the finish, usage, [DONE]."""
        reader = call_reader(get_format(request.tool_format))
        content = ContentStream(request.content is not None, get_format(request.tool_format))
        ids: list[str] = []
        try:
            yield _sse(chunk(request, self.model_id, {"role": "assistant"}))
            while item is not DONE:
                if isinstance(item, Thought):
                    yield _sse(chunk(request, self.model_id, {"reasoning_content": item.text}))
                    item = await job.pieces.get()
                    continue
                if text := content.feed(item):
                    yield _sse(chunk(request, self.model_id, {"content": text}))
                for event in reader.feed(item):
                    if isinstance(event, CallStart):
                        ids.append(call_id())
                        delta = {"index": event.index, "id": ids[-1], "type": "function",
                                 "function": {"name": event.name, "arguments": ""}}
                    else:
                        assert isinstance(event, ArgumentsDelta)
                        delta = {"index": event.index, "function": {"arguments": event.text}}
                    yield _sse(chunk(request, self.model_id, {"tool_calls": [delta]}))
                item = await job.pieces.get()
            try:
                result: CallResult = await job.future
            except Exception as exc:
                yield _sse(error_from_exception(exc).to_dict())
                yield "data: [DONE]\n\n"
                return
            if not ids and not content.streamed:
                yield _sse(chunk(request, self.model_id, {"content": no_call_content(request, result)}))
            yield _sse(chunk(request, self.model_id, {}, finish_reason(result, bool(ids))))
            if request.include_usage:
                body = chunk(request, self.model_id, {})
                body["choices"] = []
                body["usage"] = usage(result)
                yield _sse(body)
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled.set()  # a no-op once answered; stops the decode if the client went away

    # --- helpers --------------------------------------------------------------------------------
    def _owner(self, request: Request) -> str:
        """Whose stored responses a request may see: its bearer token (the --api-key once checked; on an
        open server, whatever token the client sends, so clients that send different ones stay apart)."""
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""

    def _history(self, owner: str, response_id: str) -> Optional[list[Any]]:
        entry = self.store.get(owner, response_id)
        return entry.items() if entry is not None else None

    def _keep(self, owner: str, parsed: ResponsesRequest, response: dict[str, Any]) -> dict[str, Any]:
        """Store a finished response when asked to; its `store` says whether it was (an entry over the
        byte bound, or a store of size 0, keeps nothing)."""
        if parsed.store:
            response["store"] = self.store.put(owner, parsed.id, stored_response(response, parsed.input_items))
        return response

    def _check_key(self, request: Request) -> Optional[Response]:
        if self.api_key is None:
            return None
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip() == self.api_key:
            return None
        if request.url.path.startswith("/v1/messages"):  # Anthropic's clients send the key as x-api-key
            api_key = request.headers.get("x-api-key")
            if api_key is not None and api_key.strip() == self.api_key:
                return None
            what = "no API key given" if not header and api_key is None else "the API key is wrong"
            return _anthropic_error_response(APIError(401, f"{what}: pass the server's key as 'x-api-key: KEY' or "
                                                           "'Authorization: Bearer KEY' (the anthropic client's "
                                                           "api_key)", None, "invalid_api_key"))
        what = "no API key given" if not header else "the API key is wrong"
        return _error_response(APIError(401, f"{what}: pass the server's key as 'Authorization: Bearer KEY' "
                                             "(the openai client's api_key)", None, "invalid_api_key"))

    async def _json(self, request: Request) -> Any:
        """The request body as JSON: over max_body_bytes a 413, read no further; then `parse_json_body`
        (its errors are answered as 400s naming the field)."""
        settings = self.caller.settings
        limit = settings.max_body_bytes
        too_large = APIError(413, f"the request body is over {limit} bytes (setting max_body_bytes)", None,
                             "request_too_large")
        declared = request.headers.get("content-length") or "0"
        if declared.isdigit() and int(declared) > limit:
            raise too_large
        body = bytearray()
        async for piece in request.stream():  # read no further than the limit
            body += piece
            if len(body) > limit:
                raise too_large
        return parse_json_body(bytes(body), settings, "the request body")


async def _wait_disconnect(request: Request) -> None:
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _sse(data: dict[str, Any]) -> str:
    return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"


class _Server(uvicorn.Server):
    """uvicorn's server, but a SIGINT/SIGTERM ends `run` normally instead of being re-raised after it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        original = {sig: signal.signal(sig, self.handle_exit) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in original.items():
                signal.signal(sig, handler)


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port (port 0: a free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ServeError(f"cannot resolve --host {host!r}: {exc.strerror}") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror} (pick another --port, or stop what uses it)") \
            from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve(caller: ToolCaller, model_id: str, host: str = "127.0.0.1", port: int = 8000, api_key: Optional[str] = None,
          max_queue: int = 64, shutdown_grace_s: float = 10.0, store: Optional[ResponseStore] = None) -> None:
    """Serve until SIGINT/SIGTERM; prints one line when ready. In-flight requests get `shutdown_grace_s`
    to finish, then are stopped with an error; queued ones get a 503."""
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    server = ChatServer(caller, model_id, api_key, max_queue, store)
    config = uvicorn.Config(server.app(), log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=shutdown_grace_s)
    runner = _Server(config)
    server.worker.start()
    url_host = f"[{host}]" if ":" in host else host
    print(f"ondevice: serving {model_id} on http://{url_host}:{bound}/v1", flush=True)
    try:
        runner.run(sockets=[sock])
    finally:
        server.worker.stop()
        sock.close()
    print("ondevice: stopped", file=sys.stderr, flush=True)
