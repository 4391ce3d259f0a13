"""A tensor's raw data in a GGUF file (the header itself is read by `ondevice.gguf.read_header`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ondevice.gguf import TensorEntry


def tensor_rows(path: Path, t: TensorEntry) -> np.ndarray:
    """The tensor's raw data memory-mapped as (rows, bytes per row) uint8 (what gguf-py dequantizes)."""
    import gguf

    block, type_size = gguf.GGML_QUANT_SIZES[gguf.GGMLQuantizationType(t.ggml_type)]
    nbytes = int(np.prod(t.shape, dtype=np.int64)) // block * type_size
    rows = int(np.prod(t.shape[1:], dtype=np.int64)) if len(t.shape) > 1 else 1
    return np.memmap(path, dtype=np.uint8, mode="r", offset=t.offset, shape=(rows, nbytes // rows))
