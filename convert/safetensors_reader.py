"""Read (and write) safetensors by hand with numpy: a little-endian u64 header length, a JSON
header, then raw tensor bytes. Tensors are memory-mapped a slice at a time, never loaded whole.

BF16 has no numpy dtype; it is read as uint16 and widened to float32 by a 16-bit shift.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from .errors import ConversionError, MissingFileError

# safetensors dtype name -> (numpy storage dtype, bytes per element)
SAFETENSORS_DTYPES: dict[str, tuple[np.dtype, int]] = {
    "BF16": (np.dtype("<u2"), 2),
    "F16": (np.dtype("<f2"), 2),
    "F32": (np.dtype("<f4"), 4),
}

INDEX_NAME = "model.safetensors.index.json"
SINGLE_NAME = "model.safetensors"
CHUNK_BYTES = 16 * 1024 * 1024  # one memory-mapped slice of a large tensor (~10x this in transient RAM)


def bf16_bits_to_f32(bits: np.ndarray) -> np.ndarray:
    """Widen BF16 (stored as uint16) to float32 exactly."""
    return (bits.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """Round float32 to the nearest BF16 (ties to even) and return the uint16 bit patterns."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    rounded = u + np.uint32(0x7FFF) + ((u >> np.uint32(16)) & np.uint32(1))
    return (rounded >> np.uint32(16)).astype(np.uint16)


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: file, dtype name, shape, absolute byte offset and length."""

    name: str
    path: Path
    dtype: str
    shape: tuple[int, ...]
    offset: int
    nbytes: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) if self.shape else 1


def read_header(path: Path) -> tuple[dict, int]:
    """Return (header dict, byte offset where tensor data starts) of one safetensors file."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ConversionError(f"{path}: expected a safetensors file, got {len(raw)} bytes")
        (n,) = struct.unpack("<Q", raw)
        if n > 100 * 1024 * 1024:
            raise ConversionError(f"{path}: expected a safetensors header under 100 MiB, got {n} bytes")
        header = json.loads(f.read(n))
    return header, 8 + n


class SafetensorsCheckpoint:
    """All tensors of a checkpoint directory: one model.safetensors or a sharded index."""

    def __init__(self, directory: Path):
        directory = Path(directory)
        self.directory = directory
        index = directory / INDEX_NAME
        if index.is_file():
            weight_map: dict[str, str] = json.loads(index.read_text())["weight_map"]
            files = sorted(set(weight_map.values()))
        elif (directory / SINGLE_NAME).is_file():
            files = [SINGLE_NAME]
        else:
            found = sorted(p.name for p in directory.glob("*.safetensors"))
            if not found:
                raise MissingFileError(
                    f"{directory}: expected {SINGLE_NAME} or {INDEX_NAME} with its shards, found no "
                    "*.safetensors file (PyTorch .bin checkpoints are not supported: re-save with "
                    "safe_serialization=True)"
                )
            files = found
        self.files = [directory / name for name in files]
        self.tensors: dict[str, TensorEntry] = {}
        for path in self.files:
            if not path.is_file():
                raise MissingFileError(f"{INDEX_NAME} names shard {path.name}, which is missing from {directory}")
            header, data_start = read_header(path)
            size = path.stat().st_size
            for name, info in header.items():
                if name == "__metadata__":
                    continue
                begin, end = info["data_offsets"]
                if data_start + end > size:
                    raise ConversionError(
                        f"{path.name}: tensor {name} ends at byte {data_start + end}, but the file has "
                        f"{size} bytes (truncated download? delete it and fetch again)"
                    )
                self.tensors[name] = TensorEntry(
                    name, path, info["dtype"], tuple(info["shape"]), data_start + begin, end - begin
                )

    def __contains__(self, name: str) -> bool:
        return name in self.tensors

    def names(self) -> list[str]:
        return list(self.tensors)

    def _storage(self, entry: TensorEntry) -> tuple[np.dtype, int]:
        if entry.dtype not in SAFETENSORS_DTYPES:
            raise ConversionError(
                f"tensor {entry.name} in {entry.path.name}: expected dtype one of "
                f"{', '.join(SAFETENSORS_DTYPES)}, got {entry.dtype}"
            )
        return SAFETENSORS_DTYPES[entry.dtype]

    def raw_rows(self, name: str, max_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Yield the tensor's stored elements (BF16 as uint16) in row slices of at most max_bytes.

        Each slice is its own memory map, dropped before the next, so resident memory stays bounded.
        """
        entry = self.tensors[name]
        dtype, itemsize = self._storage(entry)
        shape = entry.shape or (1,)
        row_elems = int(np.prod(shape[1:], dtype=np.int64)) if len(shape) > 1 else shape[0]
        n_rows = shape[0] if len(shape) > 1 else 1
        row_bytes = row_elems * itemsize
        rows_per_chunk = max(1, max_bytes // max(row_bytes, 1))
        for start in range(0, n_rows, rows_per_chunk):
            stop = min(n_rows, start + rows_per_chunk)
            mm = np.memmap(entry.path, dtype=dtype, mode="r", offset=entry.offset + start * row_bytes,
                           shape=((stop - start) * row_elems,))
            chunk = mm.reshape((stop - start,) + tuple(shape[1:])) if len(shape) > 1 else mm.reshape(shape)
            yield chunk
            del chunk, mm

    def rows_f32(self, name: str, max_bytes: int = CHUNK_BYTES) -> Iterator[np.ndarray]:
        """Like raw_rows, but each slice widened to float32."""
        entry = self.tensors[name]
        for chunk in self.raw_rows(name, max_bytes):
            yield bf16_bits_to_f32(chunk) if entry.dtype == "BF16" else np.asarray(chunk, dtype=np.float32)

    def read_f32(self, name: str) -> np.ndarray:
        """The whole tensor as float32 (for small tensors and ones that need reordering)."""
        entry = self.tensors[name]
        parts = list(self.rows_f32(name, max_bytes=1 << 62))
        return parts[0].reshape(entry.shape)
