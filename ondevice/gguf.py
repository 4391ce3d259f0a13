"""GGUF file headers, read without llama.cpp or the gguf package: the metadata (key-values) and the
tensor table.

Used before a model loads (is it a GGUF at all?), to tell a model's tool format from its chat template
without loading it, and by the converter (``ondevice_convert``). The file is memory-mapped and only
the values asked for are decoded: gguf-py's GGUFReader builds numpy views for every array element,
about 30 s for the Llama 3 vocabulary (128k tokens, 280k merges); this reads it in under a second.
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Collection, Optional

import numpy as np

MAGIC = b"GGUF"
VERSIONS = (2, 3)
PRELUDE_BYTES = 24  # magic, version, tensor count, key-value count
ALIGNMENT_KEY = "general.alignment"
DEFAULT_ALIGNMENT = 32

# GGUF value types: 0-7 and 10-12 fixed-size scalars, 8 string, 9 array (element type, count, items).
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_NUMPY = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4", 6: "<f4", 7: "?", 10: "<u8", 11: "<i8", 12: "<f8"}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not a GGUF this reader knows, or its header is cut or malformed."""


@dataclass(frozen=True)
class TensorEntry:
    """One row of the tensor table."""

    name: str
    shape: tuple[int, ...]  # GGUF order (ne0 first)
    ggml_type: int
    offset: int  # absolute file offset of the tensor's data


@dataclass
class GGUFHeader:
    """A GGUF file's version, metadata and tensor table."""

    version: int
    kv: dict[str, Any]
    tensors: list[TensorEntry]


def read_header(path: str | Path, keys: Optional[Collection[str]] = None, tensors: bool = True) -> GGUFHeader:
    """The header of a GGUF file. `keys`: only these metadata values are read (the others are
    skipped; None: all); with `tensors` False the tensor table is not read, and reading stops once
    every key asked for is found (``keys=()``: only the magic and version are checked).

    A GGUFError says what is wrong with a file that is not a readable GGUF; an OSError one that
    cannot be read at all.
    """
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        if size < PRELUDE_BYTES:
            raise GGUFError(f"not a GGUF file: only {size} bytes (truncated or empty)")
        with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _Reader(data).header(None if keys is None else set(keys), tensors)
            except GGUFError:
                raise
            except (struct.error, ValueError, OverflowError, ZeroDivisionError, MemoryError):
                raise GGUFError("the GGUF header is cut or malformed") from None


class _Reader:
    """A cursor over the mapped file."""

    def __init__(self, data: mmap.mmap):
        self.data = data
        self.pos = 0

    def header(self, wanted: Optional[set[str]], tensors: bool) -> GGUFHeader:
        head = self.data[:4]
        if head != MAGIC:
            raise GGUFError(f"not a GGUF file: expected magic {MAGIC!r}, got {head!r}")
        self.pos = 4
        version, n_tensors, n_kv = self.scalar("I"), self.scalar("Q"), self.scalar("Q")
        if version not in VERSIONS:
            raise GGUFError(f"unsupported GGUF version, expected one of {VERSIONS}, got {version}")
        kv: dict[str, Any] = {}
        alignment = DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            if wanted is not None and not tensors and wanted <= kv.keys():
                break
            key = self.string()
            kind = self.scalar("I")
            keep = wanted is None or key in wanted
            value = self.value(kind, keep or key == ALIGNMENT_KEY)
            if key == ALIGNMENT_KEY:
                alignment = int(value)
            if keep:
                kv[key] = value
        entries = self.tensor_table(n_tensors, alignment) if tensors else []
        return GGUFHeader(version, kv, entries)

    def tensor_table(self, count: int, alignment: int) -> list[TensorEntry]:
        rows = []
        for _ in range(count):
            name = self.string()
            shape = tuple(self.scalar("Q") for _ in range(self.scalar("I")))
            rows.append((name, shape, self.scalar("I"), self.scalar("Q")))
        start = (self.pos + alignment - 1) // alignment * alignment  # the data section is aligned
        return [TensorEntry(name, shape, ggml_type, start + offset) for name, shape, ggml_type, offset in rows]

    def scalar(self, fmt: str) -> Any:
        value = struct.unpack_from("<" + fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize("<" + fmt)
        return value

    def advance(self, n: int) -> int:
        """Move past `n` bytes; returns where they start."""
        start, self.pos = self.pos, self.pos + n
        if self.pos > len(self.data):
            raise GGUFError("the GGUF header is cut or malformed")
        return start

    def string(self, keep: bool = True) -> Optional[str]:
        n = self.scalar("Q")
        start = self.advance(n)
        return self.data[start:self.pos].decode("utf-8", errors="replace") if keep else None

    def value(self, kind: int, keep: bool = True) -> Any:
        if kind == _STRING:
            return self.string(keep)
        if kind == _ARRAY:
            inner, count = self.scalar("I"), self.scalar("Q")
            if inner in _NUMPY:
                dtype = np.dtype(_NUMPY[inner])
                start = self.advance(count * dtype.itemsize)
                return np.frombuffer(self.data, dtype=dtype, count=count, offset=start).tolist() if keep else None
            if keep:
                return [self.value(inner) for _ in range(count)]
            for _ in range(count):
                self.value(inner, keep=False)
            return None
        if kind in _SCALARS:
            if keep:
                return self.scalar(_SCALARS[kind])
            self.advance(struct.calcsize("<" + _SCALARS[kind]))
            return None
        raise GGUFError(f"the GGUF header is cut or malformed (unknown value type {kind})")
