"""The Responses API's store: finished responses kept in memory so that `previous_response_id`,
`GET /v1/responses/{id}` and `DELETE /v1/responses/{id}` can find them.

Bounded twice, by count and by bytes (the stored JSON text), across all keys together, so a server's
memory stays bounded however many clients it has; the least recently used response goes first.
Each response belongs to the API key that created it: it is filed under (key, id), so a lookup with
another key finds nothing, exactly as an id that never existed. Nothing is written to disk: a
restart forgets every response.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Optional

DEFAULT_MAX_RESPONSES = 1000
DEFAULT_MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class StoredResponse:
    """One stored response as compact JSON text: immutable, and its size is what it costs."""

    response: str  # the Response object, as GET answers it
    conversation: str  # the items a continuation starts from: the input so far, then this response's output

    @property
    def size(self) -> int:
        return len(self.response.encode()) + len(self.conversation.encode())

    def response_object(self) -> dict[str, Any]:
        return json.loads(self.response)

    def items(self) -> list[Any]:
        return json.loads(self.conversation)


def stored_response(response: dict[str, Any], input_items: list[Any]) -> StoredResponse:
    """What the store keeps for `response`, answered to `input_items` (the whole conversation before it)."""
    return StoredResponse(json.dumps(response, ensure_ascii=False, separators=(",", ":")),
                          json.dumps(input_items + response["output"], ensure_ascii=False, separators=(",", ":")))


class ResponseStore:
    """A thread-safe LRU map (API key, response id) -> StoredResponse, bounded by count and bytes."""

    def __init__(self, max_responses: int = DEFAULT_MAX_RESPONSES, max_bytes: int = DEFAULT_MAX_BYTES):
        if max_responses < 0 or max_bytes < 0:
            raise ValueError(f"the response store's bounds must be >= 0, got {max_responses} responses, "
                             f"{max_bytes} bytes")
        self.max_responses = max_responses
        self.max_bytes = max_bytes
        self._entries: "OrderedDict[tuple[str, str], StoredResponse]" = OrderedDict()  # oldest use first
        self._bytes = 0
        self._lock = threading.Lock()

    def put(self, key: str, response_id: str, entry: StoredResponse) -> bool:
        """Keep `entry`, evicting the least recently used until both bounds hold. False (nothing kept,
        nothing evicted) when the entry alone is over the byte bound or the store holds nothing."""
        size = entry.size
        if self.max_responses == 0 or size > self.max_bytes:
            return False
        with self._lock:
            old = self._entries.pop((key, response_id), None)
            if old is not None:
                self._bytes -= old.size
            while self._entries and (len(self._entries) >= self.max_responses or self._bytes + size > self.max_bytes):
                _, evicted = self._entries.popitem(last=False)
                self._bytes -= evicted.size
            self._entries[(key, response_id)] = entry
            self._bytes += size
            return True

    def get(self, key: str, response_id: str) -> Optional[StoredResponse]:
        """The response `key` stored as `response_id` (now the most recently used), or None."""
        with self._lock:
            entry = self._entries.get((key, response_id))
            if entry is not None:
                self._entries.move_to_end((key, response_id))
            return entry

    def delete(self, key: str, response_id: str) -> bool:
        """Forget the response; False when `key` has none by that id."""
        with self._lock:
            entry = self._entries.pop((key, response_id), None)
            if entry is None:
                return False
            self._bytes -= entry.size
            return True

    def stats(self) -> dict[str, int]:
        """How full it is: responses and bytes held, and the bounds."""
        with self._lock:
            return {"responses": len(self._entries), "bytes": self._bytes, "max_responses": self.max_responses,
                    "max_bytes": self.max_bytes}
