"""The one thread that owns the model: requests queue for it, so no request ever touches another's
KV cache or grammar state. One scheduler loop, whether the model holds 1 sequence or N: it admits
queued requests into free sequences (`Engine.open`), steps every running session together
(`Engine.step`), and retires the finished ones (`Engine.result`).

Each job carries the event loop of the request that made it; results and streamed text go back to
that loop with ``call_soon_threadsafe``. A job whose client went away is skipped if still queued,
and stopped at its next token if running (its place in the queue is freed either way).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..api import CallResult, ToolCaller
from .protocol import APIError, ChatRequest
from .tool_stream import find_stop

DONE = object()  # the last item a streaming job's queue receives


@dataclass(frozen=True)
class Thought:
    """A piece of a reasoning model's thought, in a streaming job's queue among the answer's text pieces."""

    text: str


class JobCancelled(Exception):
    """The client went away, or the server is stopping."""


@dataclass
class Job:
    request: ChatRequest
    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[CallResult]"
    pieces: Optional["asyncio.Queue[Any]"] = None  # streaming: text pieces, then DONE
    cancelled: threading.Event = field(default_factory=threading.Event)
    stopped: bool = False  # the sentence holds one of the request's stop sequences: end it before the next step

    def send(self, fn: Callable[..., None], *args: Any) -> None:
        """Run `fn(*args)` on the request's event loop (from the model thread); a no-op once it closed."""
        try:
            self.loop.call_soon_threadsafe(fn, *args)
        except RuntimeError:  # the loop is closed: nobody is waiting any more
            pass

    def resolve(self, result: Optional[CallResult], error: Optional[BaseException]) -> None:
        def settle() -> None:
            if not self.future.done():
                if error is not None:
                    self.future.set_exception(error)
                else:
                    self.future.set_result(result)
        self.send(settle)
        if self.pieces is not None:
            self.send(self.pieces.put_nowait, DONE)


class ModelWorker:
    """Runs jobs on one thread, in arrival order; at most `max_queue` wait."""

    def __init__(self, caller: ToolCaller, max_queue: int = 64):
        self.caller = caller
        self._jobs: "queue.Queue[Optional[Job]]" = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="ondevice-model", daemon=True)
        self._running: dict[int, Job] = {}  # the jobs in the engine, by id of their session
        self._stopping = False
        self.counts = {"answered": 0, "failed": 0, "cancelled": 0}

    def status(self) -> dict[str, Any]:
        """What /health reports: queue length, whether a request runs, and totals so far."""
        return {"queued": self._jobs.qsize(), "running": bool(self._running),
                **self.counts}

    def start(self) -> None:
        self._thread.start()

    def submit(self, job: Job) -> None:
        if self._stopping:
            raise APIError(503, "the server is stopping", None, "server_stopping")
        try:
            self._jobs.put_nowait(job)
        except queue.Full:
            raise APIError(503, f"the server is busy: {self._jobs.maxsize} requests are already waiting; retry later",
                           None, "queue_full") from None

    def stop(self, timeout: float = 5.0) -> None:
        """Fail what waits, stop what runs (at its next token), and end the thread."""
        self._stopping = True
        while True:
            try:
                job = self._jobs.get_nowait()
            except queue.Empty:
                break
            if job is not None:
                job.resolve(None, APIError(503, "the server is stopping", None, "server_stopping"))
        for job in list(self._running.values()):
            job.cancelled.set()
        try:
            self._jobs.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _ended(self, job: Job, result: Optional[CallResult], error: Optional[BaseException]) -> None:
        if isinstance(error, JobCancelled):
            self.counts["cancelled"] += 1
        elif error is not None:
            self.counts["failed"] += 1
        else:
            self.counts["answered"] += 1
        job.resolve(result, error)

    def _run(self) -> None:
        """Admit queued jobs into free sequences, then step all running ones together, until stopped."""
        caller = self.caller
        engine = caller.engine
        while True:
            while engine.free:  # admit: block only when nothing runs
                try:
                    job = self._jobs.get(block=not engine.active)
                except queue.Empty:
                    break
                if job is None:
                    for session in list(engine.active):
                        engine.release(session)
                        self._ended(self._running.pop(id(session)), None, JobCancelled())
                    return
                if job.cancelled.is_set():
                    self._ended(job, None, JobCancelled())
                    continue
                request = job.request
                try:
                    with caller.lock:
                        caller.check_open()
                        s = request.settings or caller.settings
                        caller.settings.check_per_call(s)
                        session = engine.open(request.messages, request.tools, s, request.options,
                                              on_text=self._on_text(job), query=request.query,
                                              on_reasoning=self._on_reasoning(job))
                except BaseException as exc:
                    self._ended(job, None, exc)
                    continue
                self._running[id(session)] = job
            for session in [x for x in engine.active if self._running[id(x)].cancelled.is_set()]:
                engine.release(session)  # a client went away (or the server stops): its sequence is free now
                self._ended(self._running.pop(id(session)), None, JobCancelled())
            for session in engine.active:
                if self._running[id(session)].stopped:
                    session.end()  # answered at the next step, as a budget would end it
            if not engine.active:
                continue
            with caller.lock:
                for session, error in engine.step():
                    job = self._running.pop(id(session))
                    if error is not None:
                        engine.release(session)
                        self._ended(job, None, error)
                        continue
                    try:
                        result = engine.result(session)
                    except BaseException as exc:
                        self._ended(job, None, exc)
                    else:
                        self._ended(job, result, None)

    def _on_reasoning(self, job: Job) -> Callable[[str], None]:
        """Streams a job's thought (a reasoning model); raises JobCancelled as `_on_text` does."""

        def on_reasoning(text: str) -> None:
            if job.cancelled.is_set() or self._stopping:
                raise JobCancelled()
            if job.pieces is not None and text:
                job.send(job.pieces.put_nowait, Thought(text))

        return on_reasoning

    def _on_text(self, job: Job) -> Callable[[str], None]:
        """Streams a job's final text (see Session: a call is sent once accepted); raises
        JobCancelled once its client went away or the server stops."""

        started = False
        stops = job.request.stop_sequences
        longest = max(map(len, stops), default=0)
        seen = ""  # the text so far, when the request has stop sequences

        def on_text(text: str) -> None:
            nonlocal started, seen
            if job.cancelled.is_set() or self._stopping:
                raise JobCancelled()
            if stops and text and not job.stopped:
                seen += text
                # A new match ends in the new text: look no further back than that. Only a sentence
                # stops early: a call ("<" starts its tag) is never cut.
                window = seen[max(0, len(seen) - len(text) - longest + 1):]
                job.stopped = not seen.startswith("<") and find_stop(window, stops) is not None
            if job.pieces is not None and (text or not started):  # the first piece, even "", starts the stream
                started = True
                job.send(job.pieces.put_nowait, text)

        return on_text
