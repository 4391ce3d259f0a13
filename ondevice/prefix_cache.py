"""Evaluated prompt prefixes (system prompt + tools), kept as KV-cache snapshots in RAM, LRU-bounded."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np


def prefix_key(tokens: Sequence[int]) -> str:
    return hashlib.sha256(np.asarray(tokens, dtype=np.int32).tobytes()).hexdigest()


@dataclass(frozen=True)
class PrefixEntry:
    tokens: tuple[int, ...]
    state: bytes


class PrefixCache:
    """At most `max_entries` snapshots and `max_bytes` of state; the least recently used goes first."""

    def __init__(self, max_entries: int = 8, max_bytes: int = 512 << 20):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: "OrderedDict[str, PrefixEntry]" = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return sum(len(e.state) for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tokens: Sequence[int]) -> Optional[PrefixEntry]:
        key = prefix_key(tokens)
        entry = self._entries.get(key)
        if entry is None or entry.tokens != tuple(tokens):
            self.misses += 1
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return entry

    def put(self, tokens: Sequence[int], state: bytes) -> None:
        if self.max_entries == 0 or len(state) > self.max_bytes:
            return
        key = prefix_key(tokens)
        self._entries[key] = PrefixEntry(tuple(tokens), state)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)
