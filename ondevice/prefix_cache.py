"""Evaluated prompt prefixes (system prompt + tools), kept as KV-cache snapshots: LRU in RAM, optionally on disk."""

from __future__ import annotations

import hashlib
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from .paths import atomic_path

_MAGIC = b"ONDEVKV1"


def prefix_key(tokens: Sequence[int], namespace: str = "") -> str:
    digest = hashlib.sha256(namespace.encode())
    digest.update(np.asarray(tokens, dtype=np.int32).tobytes())
    return digest.hexdigest()


@dataclass(frozen=True)
class PrefixEntry:
    tokens: tuple[int, ...]
    state: bytes


class PrefixCache:
    """At most `max_entries` snapshots and `max_bytes` of state in RAM; the least recently used goes first.

    With `directory`, snapshots are also written there (one file each, named by the model's identity
    `namespace` and the tokens) and read back on a RAM miss, so a new process skips the tools prefix too.
    The directory keeps at most `max_entries` files per namespace, oldest removed first.
    """

    def __init__(self, max_entries: int = 8, max_bytes: int = 512 << 20,
                 directory: Optional[Path] = None, namespace: str = ""):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.directory = Path(directory) if directory else None
        self.namespace = namespace
        self._entries: "OrderedDict[str, PrefixEntry]" = OrderedDict()
        self.hits = 0
        self.misses = 0

    @property
    def nbytes(self) -> int:
        return sum(len(e.state) for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def get(self, tokens: Sequence[int]) -> Optional[PrefixEntry]:
        key = prefix_key(tokens, self.namespace)
        entry = self._entries.get(key) or self._read(key)
        if entry is None or entry.tokens != tuple(tokens):
            self.misses += 1
            return None
        self._remember(key, entry)
        self.hits += 1
        return entry

    def put(self, tokens: Sequence[int], state: bytes) -> None:
        if self.max_entries == 0 or len(state) > self.max_bytes:
            return
        key = prefix_key(tokens, self.namespace)
        entry = PrefixEntry(tuple(tokens), state)
        self._remember(key, entry)
        self._write(key, entry)

    def _remember(self, key: str, entry: PrefixEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    # --- disk ---------------------------------------------------------------------------------------
    def _file(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{key}.kv"

    def _write(self, key: str, entry: PrefixEntry) -> None:
        if self.directory is None:
            return
        tokens = np.asarray(entry.tokens, dtype=np.int32).tobytes()
        with atomic_path(self._file(key)) as tmp:
            tmp.write_bytes(_MAGIC + len(entry.tokens).to_bytes(8, "little") + tokens + entry.state)
        files = sorted(self.directory.glob("*.kv"), key=lambda p: p.stat().st_mtime)
        for old in files[: max(0, len(files) - self.max_entries)]:
            old.unlink(missing_ok=True)

    def _read(self, key: str) -> Optional[PrefixEntry]:
        if self.directory is None:
            return None
        try:
            data = self._file(key).read_bytes()
        except OSError:
            return None
        if not data.startswith(_MAGIC) or len(data) < 16:
            return None
        n = int.from_bytes(data[8:16], "little")
        end = 16 + 4 * n
        tokens = tuple(int(t) for t in np.frombuffer(data[16:end], dtype=np.int32))
        os.utime(self._file(key))  # most recently used
        return PrefixEntry(tokens, data[end:])
