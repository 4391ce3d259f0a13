"""Follow an answer in a format that writes ``{"name": ..., "arguments": ...}`` objects (the card's
one tagged list, the native format's one tagged block per call, Llama 3's bare object with its
``"parameters"``) as its text grows: each call's name once it is complete, then its arguments text
as it grows. The tags and the arguments' key are the format's.

The streamed and the non-streamed responses both come from this one reader, so a call's
``function.arguments`` is exactly the text the model generated for it (not a re-serialization),
and the concatenated stream deltas equal the non-streamed answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional, Union

from .base import ToolFormat
from .blocks import json_text



def _head(arguments_key: str) -> "re.Pattern[str]":
    """The head of one call, as the grammar lays it out (the call schema puts "name" before the arguments)."""
    return re.compile(r'\{"name": ("(?:[^"\\]|\\.)*"), ' + re.escape(json.dumps(arguments_key)) + ": ")


@dataclass(frozen=True)
class CallStart:
    index: int
    name: str


@dataclass(frozen=True)
class ArgumentsDelta:
    index: int
    text: str


Event = Union[CallStart, ArgumentsDelta]


class ToolCallReader:
    """Feed text pieces; get events. Text that is not the format's calls yields no events. A format
    with a block per call has its tags between the calls (skipped)."""

    def __init__(self, fmt: ToolFormat) -> None:
        self.head = fmt.stream_head
        self._call_head = _head(fmt.arguments_key)
        self.tags = fmt.tags if fmt.block_per_call else ()
        self.text = ""
        self._pos = 0
        self._state = "open"  # open | between | arguments | close_call | done
        self._index = -1
        self._depth = 0
        self._in_string = False
        self._escape = False
        self._sent = 0  # end of the arguments text already reported

    def feed(self, piece: str) -> list[Event]:
        self.text += piece
        events: list[Event] = []
        while True:
            before = (self._state, self._pos)
            self._step(events)
            if (self._state, self._pos) == before:
                return events

    def _step(self, events: list[Event]) -> None:
        text, pos = self.text, self._pos
        if self._state == "open":
            head = self.head
            if not head:  # the calls open the answer (no tag before them)
                self._state = "between"
            elif len(text) >= len(head):
                self._state, self._pos = ("between", len(head)) if text.startswith(head) else ("done", pos)
        elif self._state == "between":
            while pos < len(text):
                if text[pos] in " \n,":
                    pos += 1
                    continue
                tag = next((t for t in self.tags if text.startswith(t, pos)), None)
                if tag is None:
                    break
                pos += len(tag)
            self._pos = pos
            if pos < len(text) and any(t.startswith(text[pos:]) for t in self.tags):
                return  # a tag not yet complete
            if pos < len(text) and text[pos] == "{":
                head = self._call_head.match(text, pos)
                if head is not None:
                    self._index += 1
                    events.append(CallStart(self._index, json.loads(head.group(1))))
                    self._state, self._pos, self._sent = "arguments", head.end(), head.end()
                    self._depth, self._in_string, self._escape = 0, False, False
            elif pos < len(text):
                self._state = "done"
        elif self._state == "arguments":
            end = self._scan_arguments()
            stop = len(text) if end is None else end
            if stop > self._sent:
                events.append(ArgumentsDelta(self._index, text[self._sent:stop]))
                self._sent = stop
            if end is not None:  # the rest of the call object: its brace, or members after the arguments ("id")
                self._state, self._pos, self._depth, self._in_string = "close_call", end, 1, False
        elif self._state == "close_call":
            end = self._scan_arguments()
            if end is not None:
                self._state, self._pos = "between", end

    def _scan_arguments(self) -> Optional[int]:
        """Advance over the arguments JSON value; its end offset once it is complete."""
        text = self.text
        i = self._pos
        while i < len(text):
            c = text[i]
            i += 1
            if self._in_string:
                if self._escape:
                    self._escape = False
                elif c == "\\":
                    self._escape = True
                elif c == '"':
                    self._in_string = False
            elif c == '"':
                self._in_string = True
            elif c in "{[":
                self._depth += 1
            elif c in "}]":
                self._depth -= 1
                if self._depth == 0:
                    self._pos = i
                    return i
        self._pos = i
        return None


class WholeCallReader(ToolCallReader):
    """The stream reader of a format whose calls are not JSON (pythonic, functiongemma): a call starts
    once the format reads its name (its ``call_name_at(text, at)``: the name of the call being written
    at `at`, the end of the complete calls, or None); its arguments are sent whole, as JSON, once the
    format's `complete_calls` reads the call."""

    def __init__(self, fmt: ToolFormat) -> None:
        super().__init__(fmt)
        self.fmt = fmt
        self._done = 0  # complete calls already sent

    def feed(self, piece: str) -> list[Event]:
        self.text += piece
        events: list[Event] = []
        complete = self.fmt.complete_calls(self.text)
        started = [value["name"] for value, _ in complete]
        name = self.fmt.call_name_at(self.text, complete[-1][1] if complete else 0)  # type: ignore[attr-defined]
        if name is not None:
            started.append(name)
        while self._index + 1 < len(started):
            self._index += 1
            events.append(CallStart(self._index, started[self._index]))
        while self._done < len(complete) and self._done <= self._index:
            events.append(ArgumentsDelta(self._done, json_text(complete[self._done][0]["arguments"])))
            self._done += 1
        return events


def call_reader(fmt: ToolFormat) -> ToolCallReader:
    """A fresh stream reader of the format's calls (its own `reader_class`, else `ToolCallReader`)."""
    return (fmt.reader_class or ToolCallReader)(fmt)


def split_calls(text: str, fmt: ToolFormat) -> list[tuple[str, str]]:
    """(name, arguments text) of every call in a complete answer."""
    calls: list[tuple[str, str]] = []
    for event in call_reader(fmt).feed(text):
        if isinstance(event, CallStart):
            calls.append((event.name, ""))
        else:
            name, arguments = calls[event.index]
            calls[event.index] = (name, arguments + event.text)
    return calls
