"""llama.cpp's quantizer on our GGUF: every required type loads, generates sensibly, has the right
tensor types and size; the report prints the worst per-tensor error."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

from ondevice_convert import QUANT_TYPES, UnknownQuantError, quantize
from ondevice_convert.cli import REQUIRED_QUANTS
from ondevice.gguf import read_header
from ondevice_convert.report import format_report, quantization_errors
from ondevice_convert.verify import VERIFY_TEXTS, compare_logits, llama_cpp_logits

# main weight type of each preset for 256-wide rows (no fallback needed: tiny widths are multiples of 256)
MAIN_TYPE = {"Q8_0": "Q8_0", "Q6_K": "Q6_K", "Q5_K_M": "Q5_K", "Q4_K_M": "Q4_K", "Q4_0": "Q4_0"}
# Correlation of all logits with the F16 model's (measured: 0.997, 0.986, 0.959, 0.919, 0.838).
MIN_LOGIT_CORR = {"Q8_0": 0.99, "Q6_K": 0.97, "Q5_K_M": 0.92, "Q4_K_M": 0.85, "Q4_0": 0.75}
# Mean relative RMS weight error llama.cpp's presets should reach on Gaussian weights.
# (measured: 0.0054, 0.018, 0.032, 0.061, 0.081)
MAX_MEAN_REL_RMS = {"Q8_0": 0.01, "Q6_K": 0.03, "Q5_K_M": 0.05, "Q4_K_M": 0.09, "Q4_0": 0.12}


@pytest.fixture(scope="module")
def quantized(tiny_f16: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("quant")
    paths = {}
    for q in REQUIRED_QUANTS:
        paths[q] = out / f"tiny.{q}.gguf"
        size = quantize(tiny_f16, paths[q], q, progress=False)
        assert size == paths[q].stat().st_size
    return paths


@pytest.mark.nomodel
def test_required_types_offered() -> None:
    assert set(REQUIRED_QUANTS) <= set(QUANT_TYPES)


@pytest.mark.parametrize("quant", REQUIRED_QUANTS)
def test_quantized_file(quant: str, quantized: dict[str, Path], tiny_f16: Path, tiny_ckpt: Path) -> None:
    path = quantized[quant]
    h = read_header(path)
    assert h.kv["general.file_type"] == QUANT_TYPES[quant].ftype
    types = {t.name: gguf.GGMLQuantizationType(t.ggml_type).name for t in h.tensors}
    assert types["blk.0.attn_q.weight"] == MAIN_TYPE[quant]
    assert types["blk.0.attn_norm.weight"] == "F32"
    assert path.stat().st_size < tiny_f16.stat().st_size
    # loads and predicts like the F16 model
    ids = Tokenizer.from_file(str(tiny_ckpt / "tokenizer.json")).encode(VERIFY_TEXTS[0]).ids
    ref, got = llama_cpp_logits(tiny_f16, ids), llama_cpp_logits(path, ids)
    cmp = compare_logits(ref, got)
    corr = float(np.corrcoef(ref.reshape(-1), got.reshape(-1))[0, 1])
    print(quant, cmp, f"corr {corr:.4f}")
    assert np.isfinite(got).all()
    # The random tiny model has very sharp attention, so its logits are far more sensitive to weight
    # noise than a trained model's; the bounds only say "the same model, slightly perturbed".
    assert corr > MIN_LOGIT_CORR[quant], corr
    errs = quantization_errors(tiny_f16, path)
    mean_rel = float(np.mean([e.rel_rms_err for e in errs if e.qtype not in ("F32", "F16")]))
    print(quant, 'mean rel rms', mean_rel)
    assert 0 < mean_rel < MAX_MEAN_REL_RMS[quant], mean_rel


def test_sizes_shrink_with_bits(quantized: dict[str, Path]) -> None:
    sizes = [quantized[q].stat().st_size for q in ["Q8_0", "Q6_K", "Q5_K_M", "Q4_K_M"]]
    assert sizes == sorted(sizes, reverse=True)


def test_generates_text(quantized: dict[str, Path]) -> None:
    import llama_cpp

    llm = llama_cpp.Llama(str(quantized["Q4_K_M"]), n_ctx=128, verbose=False)
    out = llm.create_completion("Hello", max_tokens=8, temperature=0.0)
    assert out["usage"]["completion_tokens"] >= 1


def test_report_lists_every_tensor(quantized: dict[str, Path], tiny_f16: Path) -> None:
    errs = quantization_errors(tiny_f16, quantized["Q4_0"])
    assert len(errs) == len(read_header(tiny_f16).tensors)
    text = format_report(errs)
    assert "worst max |err|" in text and "token_embd.weight" in text
    assert errs[0].rel_rms_err >= errs[-1].rel_rms_err


def test_unknown_quant(tiny_f16: Path, tmp_path: Path) -> None:
    with pytest.raises(UnknownQuantError, match=r"expected --quant one of Q8_0, .*got 'Q3_X'"):
        quantize(tiny_f16, tmp_path / "x.gguf", "Q3_X")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.nomodel
def test_quantizer_failure_leaves_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "not-a-model.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 64)
    out = tmp_path / "out"
    from ondevice_convert import ConversionError

    with pytest.raises(ConversionError, match="llama.cpp could not quantize"):
        quantize(bad, out / "x.Q4_0.gguf", "Q4_0", progress=False)
    assert list(out.iterdir()) == []


def test_quant_benchmark_reports_the_type_mix_and_the_weight_error(quantized: dict[str, Path], tiny_f16: Path) -> None:
    from ondevice_bench.quant import weight_error

    row = weight_error(tiny_f16, quantized["Q4_K_M"])
    assert abs(sum(row["tensor_types"].values()) - 1.0) < 0.01
    assert "Q4_K" in row["tensor_types"] and "F32" in row["tensor_types"]
    assert 0 < row["weight_rel_rms_err"] < MAX_MEAN_REL_RMS["Q4_K_M"]
    assert weight_error(tiny_f16, tiny_f16)["weight_rel_rms_err"] == 0.0
