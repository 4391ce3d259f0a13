"""Evaluated prompt prefixes (system prompt + tools), kept as KV-cache snapshots: LRU in RAM, optionally on disk.

On disk the cache owns only its own files: ``ondevice-kv-<model>-<key>.kv`` (16 + 64 hex digits), so
the folder may be shared with anything else, and nothing that does not carry that name is ever
read or removed. Each file holds a checksum over its contents; a damaged one is dropped and the
prefix evaluated again. Writes go to a temp file renamed into place, so processes sharing the
folder see whole files or none, and a file another process removed is just a miss.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from ..paths import atomic_path, prepare_dir

# Layout: magic (8) | token count (8, little endian) | sha256 of the rest (32) | tokens (int32) | state
_MAGIC = b"ONDEVKV2"
_HEADER = 8 + 8 + 32
FILE_PREFIX = "ondevice-kv-"
_FILE = re.compile(r"ondevice-kv-([0-9a-f]{16})-([0-9a-f]{64})\.kv")
_TEMP = re.compile(r"\.ondevice-kv-[0-9a-f]{16}-[0-9a-f]{64}\.kv\..+\.part")
STALE_TEMP_SECONDS = 3600  # a temp file this old belongs to a writer that died


def prefix_key(tokens: Sequence[int], namespace: str = "") -> str:
    digest = hashlib.sha256(namespace.encode())
    digest.update(np.asarray(tokens, dtype=np.int32).tobytes())
    return digest.hexdigest()


def namespace_id(namespace: str) -> str:
    """The 16 hex digits that name a model's files in the cache folder."""
    return hashlib.sha256(b"ondevice-namespace\0" + namespace.encode()).hexdigest()[:16]


def prepare_cache_dir(directory: str | os.PathLike) -> Path:
    """Create the cache folder if needed; a DirectoryError when it is a file or not writable."""
    return prepare_dir(directory, "prefix cache directory")


@dataclass(frozen=True)
class PrefixEntry:
    tokens: tuple[int, ...]
    state: bytes


class PrefixCache:
    """At most `max_entries` snapshots and `max_bytes` of state in RAM; the least recently used goes first.

    With `directory`, snapshots are also written there (one file each, named by the model's identity
    `namespace` and the tokens) and read back on a RAM miss, so a new process skips the tools prefix too.
    The folder keeps at most `max_entries` files per namespace and `disk_max_bytes` over all
    namespaces, least recently used (written or read) removed first. A folder that stops being
    writable turns the disk part off for this cache (`disk_error` says why); calls go on.
    """

    def __init__(self, max_entries: int = 8, max_bytes: int = 512 << 20,
                 directory: Optional[str | os.PathLike] = None, namespace: str = "",
                 disk_max_bytes: int = 2 << 30):
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.disk_max_bytes = disk_max_bytes
        self.directory = prepare_cache_dir(directory) if directory else None
        self.namespace = namespace
        self._ns = namespace_id(namespace)
        self._entries: "OrderedDict[str, PrefixEntry]" = OrderedDict()
        self.hits = 0
        self.misses = 0
        self.dropped = 0  # damaged files removed
        self.disk_error: Optional[str] = None

    @property
    def nbytes(self) -> int:
        return sum(len(e.state) for e in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        """Forget the snapshots held in RAM (files on disk stay)."""
        self._entries.clear()

    def get(self, tokens: Sequence[int], cuts: Sequence[int] = ()) -> Optional[PrefixEntry]:
        """The snapshot of `tokens` evaluated with `cuts` (llama.py's seq_cuts), or None."""
        key = prefix_key(tokens, self._keyed(cuts))
        entry = self._entries.get(key) or self._read(key)
        if entry is None or entry.tokens != tuple(tokens):
            self.misses += 1
            return None
        self._remember(key, entry)
        self.hits += 1
        return entry

    def put(self, tokens: Sequence[int], state: bytes, cuts: Sequence[int] = ()) -> None:
        """Keep the snapshot of `tokens` evaluated with `cuts`."""
        if self.max_entries == 0 or len(state) > self.max_bytes:
            return
        key = prefix_key(tokens, self._keyed(cuts))
        entry = PrefixEntry(tuple(tokens), state)
        self._remember(key, entry)
        self._write(key, entry)

    def _keyed(self, cuts: Sequence[int]) -> str:
        return f"{self.namespace}|cuts={','.join(map(str, cuts))}" if cuts else self.namespace

    def _remember(self, key: str, entry: PrefixEntry) -> None:
        self._entries[key] = entry
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries or self.nbytes > self.max_bytes:
            self._entries.popitem(last=False)

    # --- disk ---------------------------------------------------------------------------------------
    def _file(self, key: str) -> Path:
        assert self.directory is not None
        return self.directory / f"{FILE_PREFIX}{self._ns}-{key}.kv"

    def _write(self, key: str, entry: PrefixEntry) -> None:
        if self.directory is None or self.disk_error is not None:
            return
        body = np.asarray(entry.tokens, dtype=np.int32).tobytes() + entry.state
        if _HEADER + len(body) > self.disk_max_bytes:
            return
        header = _MAGIC + len(entry.tokens).to_bytes(8, "little") + hashlib.sha256(body).digest()
        try:
            with atomic_path(self._file(key)) as tmp:
                with open(tmp, "wb") as fh:
                    fh.write(header)
                    fh.write(body)
            self.evict()
        except OSError as exc:  # full disk, folder removed or made read-only: go on without it
            self.disk_error = f"{self.directory}: {exc.strerror or exc}"

    def _read(self, key: str) -> Optional[PrefixEntry]:
        if self.directory is None:
            return None
        path = self._file(key)
        try:
            data = path.read_bytes()
        except OSError:  # absent, or removed by another process meanwhile
            return None
        entry = _decode(data)
        if entry is None:  # damaged (or truncated by hand): drop it; the caller evaluates again
            self.dropped += 1
            path.unlink(missing_ok=True)
            return None
        try:
            os.utime(path)  # most recently used
        except OSError:
            pass
        return entry

    def evict(self) -> None:
        """Bring the folder within its bounds: at most max_entries files of this namespace and
        disk_max_bytes of files over all namespaces, least recently used first. Only files named
        as ours are considered; temp files of writers that died are removed too."""
        if self.directory is None:
            return
        files = []  # (mtime, size, path, namespace)
        now = time.time()
        with os.scandir(self.directory) as it:
            for item in it:
                match = _FILE.fullmatch(item.name)
                try:
                    if match is None:
                        if _TEMP.fullmatch(item.name) and now - item.stat().st_mtime > STALE_TEMP_SECONDS:
                            os.unlink(item.path)
                        continue
                    st = item.stat()
                except FileNotFoundError:
                    continue
                files.append((st.st_mtime, st.st_size, Path(item.path), match.group(1)))
        files.sort(key=lambda f: f[0])
        mine = [f for f in files if f[3] == self._ns]
        doomed = {f[2] for f in mine[: max(0, len(mine) - self.max_entries)]}
        total = sum(f[1] for f in files if f[2] not in doomed)
        for _, size, path, _ in files:
            if total <= self.disk_max_bytes:
                break
            if path not in doomed:
                doomed.add(path)
                total -= size
        for path in doomed:
            _remove_ours(path)


def _decode(data: bytes) -> Optional[PrefixEntry]:
    """The entry in a file's bytes; None unless the layout and the checksum hold."""
    if len(data) < _HEADER or data[:8] != _MAGIC:
        return None
    n = int.from_bytes(data[8:16], "little")
    body = memoryview(data)[_HEADER:]
    if 4 * n > len(body) or hashlib.sha256(body).digest() != data[16:_HEADER]:
        return None
    tokens = tuple(int(t) for t in np.frombuffer(body[: 4 * n], dtype=np.int32))
    return PrefixEntry(tokens, bytes(body[4 * n:]))


def _remove_ours(path: Path) -> None:
    """Remove a cache file, checking its magic first: a file merely named like ours stays."""
    try:
        with open(path, "rb") as fh:
            if fh.read(len(_MAGIC)) != _MAGIC:
                return
        path.unlink()
    except OSError:  # already removed by another process
        pass
