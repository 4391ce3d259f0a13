"""The one thread that owns the model: requests queue for it, so no request ever touches another's
KV cache or grammar state. With a model loaded with n_parallel = 1 they are answered one at a
time (`ToolCaller.call_messages`); with N > 1 up to N run together, their decode steps batched
in one llama_decode (batch.py), each in its own sequence with its own matcher.

Each job carries the event loop of the request that made it; results and streamed text go back to
that loop with ``call_soon_threadsafe``. A job whose client went away is skipped if still queued,
and stopped at its next token if running (its place in the queue is freed either way).
"""

from __future__ import annotations

import asyncio
import codecs
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..api import CallResult, ToolCaller
from ..batch import BatchEngine
from .protocol import APIError, ChatRequest

DONE = object()  # the last item a streaming job's queue receives


class JobCancelled(Exception):
    """The client went away, or the server is stopping."""


@dataclass
class Job:
    request: ChatRequest
    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[CallResult]"
    pieces: Optional["asyncio.Queue[Any]"] = None  # streaming: text pieces, then DONE
    cancelled: threading.Event = field(default_factory=threading.Event)

    def _send(self, fn: Callable[..., None], *args: Any) -> None:
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
        self._send(settle)
        if self.pieces is not None:
            self._send(self.pieces.put_nowait, DONE)


class ModelWorker:
    """Runs jobs on one thread, in arrival order; at most `max_queue` wait."""

    def __init__(self, caller: ToolCaller, max_queue: int = 64):
        self.caller = caller
        self._jobs: "queue.Queue[Optional[Job]]" = queue.Queue(maxsize=max_queue)
        self._thread = threading.Thread(target=self._run, name="ondevice-model", daemon=True)
        self._current: Optional[Job] = None
        self._running: dict[int, Job] = {}  # batched: the jobs in the engine, by id of their BatchRequest
        self._stopping = False
        self.counts = {"answered": 0, "failed": 0, "cancelled": 0}

    def status(self) -> dict[str, Any]:
        """What /health reports: queue length, whether a request runs, and totals so far."""
        return {"queued": self._jobs.qsize(), "running": self._current is not None or bool(self._running),
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
        current = self._current
        if current is not None:
            current.cancelled.set()
        for job in list(self._running.values()):
            job.cancelled.set()
        try:
            self._jobs.put_nowait(None)
        except queue.Full:
            pass
        self._thread.join(timeout)

    def _run(self) -> None:
        if self.caller.model.n_parallel > 1:
            self._run_batched()
            return
        while True:
            job = self._jobs.get()
            if job is None:
                return
            if job.cancelled.is_set():
                self.counts["cancelled"] += 1
                job.resolve(None, JobCancelled())
                continue
            self._current = job
            try:
                result = self._answer(job)
            except JobCancelled as exc:
                self.counts["cancelled"] += 1
                job.resolve(None, exc)
            except BaseException as exc:  # every error goes back to its request; the thread lives on
                self.counts["failed"] += 1
                job.resolve(None, exc)
            else:
                self.counts["answered"] += 1
                job.resolve(result, None)
            finally:
                self._current = None

    def _ended(self, job: Job, result: Optional[CallResult], error: Optional[BaseException]) -> None:
        if isinstance(error, JobCancelled):
            self.counts["cancelled"] += 1
        elif error is not None:
            self.counts["failed"] += 1
        else:
            self.counts["answered"] += 1
        job.resolve(result, error)

    def _run_batched(self) -> None:
        """Admit queued jobs into free slots, then step all running ones together, until stopped."""
        engine = BatchEngine(self.caller)
        while True:
            while engine.free:  # admit: block only when nothing runs
                try:
                    job = self._jobs.get(block=not engine.active)
                except queue.Empty:
                    break
                if job is None:
                    for req in list(engine.active):
                        engine.release(req)
                        self._ended(self._running.pop(id(req)), None, JobCancelled())
                    return
                if job.cancelled.is_set():
                    self._ended(job, None, JobCancelled())
                    continue
                request = job.request
                try:
                    with self.caller.lock:
                        req = engine.admit(request.messages, request.tools, request.settings, request.options,
                                           self._on_tokens(job), request.query)
                except BaseException as exc:
                    self._ended(job, None, exc)
                    continue
                self._running[id(req)] = job
            for req in [r for r in engine.active if self._running[id(r)].cancelled.is_set()]:
                engine.release(req)  # a client went away (or the server stops): its slot is free now
                self._ended(self._running.pop(id(req)), None, JobCancelled())
            if not engine.active:
                continue
            with self.caller.lock:
                ended = engine.step()
                for req, error in ended:
                    job = self._running.pop(id(req))
                    if error is not None:
                        engine.release(req)
                        self._ended(job, None, error)
                        continue
                    try:
                        result = engine.finish(req)
                    except BaseException as exc:
                        self._ended(job, None, exc)
                    else:
                        self._ended(job, result, None)

    def _on_tokens(self, job: Job) -> Callable[[list[int]], None]:
        """Streams a job's text; raises JobCancelled once its client went away or the server stops."""
        model = self.caller.model
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

        def on_tokens(tokens: list[int]) -> None:
            if job.cancelled.is_set() or self._stopping:
                raise JobCancelled()
            if job.pieces is not None:
                text = decoder.decode(model.detokenize(tokens))
                if text:
                    job._send(job.pieces.put_nowait, text)

        return on_tokens

    def _answer(self, job: Job) -> CallResult:
        request = job.request
        on_tokens = self._on_tokens(job)
        return self.caller.call_messages(request.messages, request.tools, request.settings, options=request.options,
                                         on_tokens=on_tokens, query=request.query)
