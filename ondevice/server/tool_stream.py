"""What the server reads from a growing answer besides its calls (those are the format's stream
reader, formats/stream.py): where a stop sequence falls, and a response format's JSON content."""

from __future__ import annotations

from typing import Optional, Sequence

from ..formats.base import ToolFormat


def find_stop(text: str, stops: Sequence[str]) -> Optional[tuple[int, str]]:
    """Where `text` first holds one of `stops`: (the start of the match, the sequence), None when it
    holds none. The match that ends first wins, as a decoder checking after each token would stop
    there; on a tie, the longer one."""
    best: Optional[tuple[tuple[int, int], int, str]] = None
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (best is None or (at + len(stop), -len(stop)) < best[0]):
            best = ((at + len(stop), -len(stop)), at, stop)
    return None if best is None else (best[1], best[2])


class ContentStream:
    """A response format's JSON answer as content deltas: feed text pieces, get the text to send.
    The first piece tells a JSON value (sent as it grows) from a call (the format's tag: nothing sent)."""

    def __init__(self, enabled: bool, fmt: ToolFormat) -> None:
        self.enabled = enabled
        self.fmt = fmt
        self.streamed = False
        self._decided = not enabled

    def feed(self, piece: str) -> str:
        if not self._decided and piece:
            self._decided = True
            self.streamed = not self.fmt.may_start_calls(piece.lstrip())
        return piece if self.streamed else ""
