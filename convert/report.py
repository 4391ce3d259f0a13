"""Per-tensor quantization error of a quantized GGUF against the float GGUF it came from
(the llama2.c export habit of printing the worst error), dequantized with gguf-py."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class TensorError:
    name: str
    qtype: str
    n_elements: int
    max_abs_err: float
    rms_err: float
    rel_rms_err: float  # rms error / rms of the original weights
    ref_rms: float  # rms of the original weights


def quantization_errors(float_gguf: Path, quant_gguf: Path, rows_per_chunk: int = 4096) -> list[TensorError]:
    """Error of every tensor of quant_gguf vs float_gguf, worst relative RMS error first."""
    import gguf
    from gguf.quants import dequantize

    from ondevice.gguf import read_header

    from .gguf_meta import tensor_rows

    ref = {t.name: t for t in read_header(Path(float_gguf)).tensors}
    out: list[TensorError] = []
    for t in read_header(Path(quant_gguf)).tensors:
        if t.name not in ref:
            continue
        r = ref[t.name]
        qtype, rtype = gguf.GGMLQuantizationType(t.ggml_type), gguf.GGMLQuantizationType(r.ggml_type)
        q_rows, r_rows = tensor_rows(Path(quant_gguf), t), tensor_rows(Path(float_gguf), r)
        n = int(np.prod(t.shape))
        mx, se, sr = 0.0, 0.0, 0.0
        for start in range(0, q_rows.shape[0], rows_per_chunk):
            q = dequantize(np.asarray(q_rows[start:start + rows_per_chunk]), qtype).astype(np.float32)
            w = dequantize(np.asarray(r_rows[start:start + rows_per_chunk]), rtype).astype(np.float32)
            d = q.reshape(-1) - w.reshape(-1)
            mx = max(mx, float(np.abs(d).max()))
            se += float(np.square(d, dtype=np.float64).sum())
            sr += float(np.square(w, dtype=np.float64).sum())
        rms, ref_rms = (se / n) ** 0.5, (sr / n) ** 0.5
        out.append(TensorError(t.name, qtype.name, n, mx, rms, rms / max(ref_rms, 1e-30), ref_rms))
    out.sort(key=lambda e: e.rel_rms_err, reverse=True)
    return out


def format_report(errors: list[TensorError], limit: int = 0) -> str:
    rows = errors[:limit] if limit else errors
    lines = [f"{'tensor':32} {'type':7} {'max |err|':>10} {'rms err':>10} {'rel rms':>8}"]
    lines += [f"{e.name:32} {e.qtype:7} {e.max_abs_err:10.4g} {e.rms_err:10.4g} {e.rel_rms_err:8.2%}" for e in rows]
    if errors:
        worst = max(errors, key=lambda e: e.max_abs_err)
        lines.append(f"worst max |err|: {worst.max_abs_err:.4g} in {worst.name} ({worst.qtype})")
    return "\n".join(lines)
