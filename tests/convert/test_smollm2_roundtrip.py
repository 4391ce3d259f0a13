"""Real weights: the stand-in SmolLM2-135M-Instruct Q4_1 GGUF, dequantized back into a Hugging Face
checkpoint (F32 safetensors, tokenizer.json rebuilt from the GGUF vocabulary), converted with our
converter, must reproduce the original file."""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

from ondevice_convert import convert_checkpoint, quantize
from ondevice_bench.fixtures.gguf_to_hf import gguf_to_hf
from ondevice_convert.verify import VERIFY_TEXTS, compare_logits, llama_cpp_logits, tokenization_mismatches

pytestmark = pytest.mark.slow  # ~1 minute: 135M parameters dequantized and converted

# Our F32 GGUF holds exactly the dequantized weights; llama.cpp's Q4_1 path additionally rounds
# activations to Q8_1, so logits differ by that noise only: measured max |diff| ~1.1, mean ~0.18.
F32_MAX_ABS_DIFF = 2.0
F32_MEAN_ABS_DIFF = 0.3
F32_MIN_TOP1 = 0.95  # positions whose top-2 logits are closer than the noise may flip
DECISIVE_MARGIN = 1.0  # ...but never where the original's top-1 leads by more than this


@pytest.fixture(scope="module")
def standin() -> Path:
    from ondevice.models.assets import standin_gguf_path

    return standin_gguf_path()


@pytest.fixture(scope="module")
def roundtrip(standin: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("smollm2")
    hf = gguf_to_hf(standin, root / "SmolLM2-135M-Instruct")
    result = convert_checkpoint(hf, root / "out", quant=None, outtype="f32", progress=False)
    return hf, result.paths["F32"]


def _prompt(hf: Path) -> list[int]:
    return Tokenizer.from_file(str(hf / "tokenizer.json")).encode(
        VERIFY_TEXTS[0] + " " + VERIFY_TEXTS[2] + VERIFY_TEXTS[4]).ids


def test_tensors_equal_dequantized_original(standin: Path, roundtrip: tuple[Path, Path]) -> None:
    from gguf.quants import dequantize

    orig = {t.name: t for t in gguf.GGUFReader(str(standin)).tensors}
    ours = {t.name: t for t in gguf.GGUFReader(str(roundtrip[1])).tensors}
    assert set(orig) == set(ours)
    for name, t in orig.items():
        assert ours[name].tensor_type == gguf.GGMLQuantizationType.F32
        np.testing.assert_array_equal(np.asarray(ours[name].data).reshape(-1),
                                      dequantize(np.asarray(t.data), t.tensor_type).reshape(-1), err_msg=name)


def test_metadata_and_vocab_equal_original(standin: Path, roundtrip: tuple[Path, Path]) -> None:
    a, b = gguf.GGUFReader(str(standin)), gguf.GGUFReader(str(roundtrip[1]))
    keys = [k for k in a.fields if k.startswith(("llama.", "tokenizer.")) and k != "tokenizer.ggml.padding_token_id"]
    for k in keys:
        assert k in b.fields, k
        assert a.fields[k].contents() == b.fields[k].contents(), k
    assert b.fields["tokenizer.ggml.pre"].contents() == "smollm"
    assert b.fields["general.license"].contents() == "apache-2.0"


def test_tokenization_matches_tokenizers_and_original(standin: Path, roundtrip: tuple[Path, Path]) -> None:
    hf, ours = roundtrip
    assert tokenization_mismatches(ours, hf / "tokenizer.json", VERIFY_TEXTS) == []
    assert tokenization_mismatches(standin, hf / "tokenizer.json", VERIFY_TEXTS) == []


def test_f32_logits_match_original(standin: Path, roundtrip: tuple[Path, Path]) -> None:
    hf, ours = roundtrip
    ids = _prompt(hf)
    ref = llama_cpp_logits(standin, ids)
    got = llama_cpp_logits(ours, ids)
    cmp = compare_logits(ref, got)
    print(cmp)
    assert cmp.top1_agreement >= F32_MIN_TOP1, cmp
    assert cmp.max_abs_diff < F32_MAX_ABS_DIFF and cmp.mean_abs_diff < F32_MEAN_ABS_DIFF, cmp
    top2 = np.sort(ref, axis=-1)[:, -2:]
    decisive = (top2[:, 1] - top2[:, 0]) > DECISIVE_MARGIN
    assert decisive.sum() > len(ids) // 2
    assert (ref.argmax(-1) == got.argmax(-1))[decisive].all()


def test_requantized_to_q4_1_is_byte_identical(standin: Path, roundtrip: tuple[Path, Path], tmp_path: Path) -> None:
    """llama.cpp's quantizer on our GGUF rebuilds the original Q4_1 file's tensors bit for bit, so
    logits are identical too."""
    out = tmp_path / "ours.Q4_1.gguf"
    quantize(roundtrip[1], out, "Q4_1", progress=False)
    orig = {t.name: t for t in gguf.GGUFReader(str(standin)).tensors}
    ours = {t.name: t for t in gguf.GGUFReader(str(out)).tensors}
    for name, t in orig.items():
        assert ours[name].tensor_type == t.tensor_type, name
        assert np.asarray(ours[name].data).tobytes() == np.asarray(t.data).tobytes(), name
    ids = _prompt(roundtrip[0])
    cmp = compare_logits(llama_cpp_logits(standin, ids), llama_cpp_logits(out, ids))
    assert cmp.top1_agreement == 1.0 and cmp.max_abs_diff == 0.0, cmp
