"""Tiny random Llama-3.2 (BF16 safetensors) -> our F16 GGUF -> llama.cpp logits vs transformers."""

from __future__ import annotations

import json
from pathlib import Path

import gguf
import numpy as np
import pytest
from tokenizers import Tokenizer

from ondevice.gguf import read_header
from ondevice_convert.hparams import llama3_rope_factors, parse_llama_config
from ondevice_convert.verify import (CHAT_CONVERSATIONS, VERIFY_TEXTS, compare_logits, llama_cpp_greedy,
                            llama_cpp_logits, render_chat, transformers_greedy, transformers_logits)

# llama.cpp multiplies F16 weights with F16-rounded activations on CPU; transformers runs float32
# (the KV cache is kept in F32 for the comparison). The tiny model's logits have std ~16 and sharp
# attention; measured max |diff| over these prompts is ~0.64 and mean |diff| ~0.03, so the bounds are:
MAX_ABS_DIFF = 1.0
MEAN_ABS_DIFF = 0.1


def _prompts(ckpt: Path) -> list[list[int]]:
    tok = Tokenizer.from_file(str(ckpt / "tokenizer.json"))
    template = json.loads((ckpt / "tokenizer_config.json").read_text())["chat_template"]
    texts = [VERIFY_TEXTS[0], VERIFY_TEXTS[2], VERIFY_TEXTS[4], VERIFY_TEXTS[7]]
    ids = [tok.encode(t).ids for t in texts]  # with BOS, as the post-processor adds it
    chat = render_chat(template, CHAT_CONVERSATIONS[0], tools=None)
    ids.append(tok.encode(chat, add_special_tokens=False).ids)
    return ids


def test_logits_match_transformers(tiny_ckpt: Path, tiny_f16: Path, tiny_hf_model) -> None:
    for ids in _prompts(tiny_ckpt):
        ref = transformers_logits(tiny_hf_model, ids)
        got = llama_cpp_logits(tiny_f16, ids)
        cmp = compare_logits(ref, got)
        print(cmp)
        assert cmp.top1_agreement == 1.0, cmp
        assert cmp.max_abs_diff < MAX_ABS_DIFF, cmp
        assert cmp.mean_abs_diff < MEAN_ABS_DIFF, cmp
        # the model is not degenerate: predictions vary along the prompt
        assert len(set(ref.argmax(-1).tolist())) > len(ids) // 2


@pytest.mark.slow
def test_greedy_32_tokens_match_transformers(tiny_ckpt: Path, tiny_f16: Path, tiny_hf_model) -> None:
    for ids in _prompts(tiny_ckpt)[:3]:
        want = transformers_greedy(tiny_hf_model, ids, 32)
        got = llama_cpp_greedy(tiny_f16, ids, 32)
        assert got == want
        assert len(set(want)) > 8  # a real continuation, not one token repeated


def test_gguf_metadata(tiny_ckpt: Path, tiny_f16: Path) -> None:
    config = json.loads((tiny_ckpt / "config.json").read_text())
    h = read_header(tiny_f16)
    f = h.kv
    assert f["general.architecture"] == "llama"
    assert f["general.file_type"] == int(gguf.LlamaFileType.MOSTLY_F16)
    assert f["general.name"] == "tiny-llama"
    assert f["llama.embedding_length"] == config["hidden_size"]
    assert f["llama.feed_forward_length"] == config["intermediate_size"]
    assert f["llama.block_count"] == config["num_hidden_layers"]
    assert f["llama.attention.head_count"] == config["num_attention_heads"]
    assert f["llama.attention.head_count_kv"] == config["num_key_value_heads"]
    assert f["llama.context_length"] == 131072
    assert f["llama.rope.freq_base"] == 500000.0
    assert f["llama.rope.dimension_count"] == 64
    assert f["llama.vocab_size"] == 128256
    assert abs(f["llama.attention.layer_norm_rms_epsilon"] - 1e-5) < 1e-9
    assert f["tokenizer.chat_template"] == json.loads((tiny_ckpt / "tokenizer_config.json").read_text())["chat_template"]
    assert {k: f[k] for k in ("tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.bos_token_id",
                              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id",
                              "tokenizer.ggml.eom_token_id", "tokenizer.ggml.add_bos_token")} == {
        "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "llama-bpe",
        "tokenizer.ggml.bos_token_id": 128000, "tokenizer.ggml.eos_token_id": 128009,
        "tokenizer.ggml.eot_token_id": 128009, "tokenizer.ggml.eom_token_id": 128008,
        "tokenizer.ggml.add_bos_token": True}
    tokens, types = f["tokenizer.ggml.tokens"], f["tokenizer.ggml.token_type"]
    assert len(tokens) == len(types) == 128256
    assert tokens[128009] == "<|eot_id|>" and types[128009] == gguf.TokenType.CONTROL
    assert tokens[128010] == "<|python_tag|>" and types[1000] == gguf.TokenType.NORMAL
    assert len(f["tokenizer.ggml.merges"]) == 280147 and f["tokenizer.ggml.merges"][0] == "\u0120 \u0120"
    shapes = {t.name: t.shape for t in h.tensors}
    assert "output.weight" not in shapes  # tied embeddings: llama.cpp reuses token_embd
    assert shapes["token_embd.weight"] == (256, 128256)
    assert shapes["blk.0.attn_k.weight"] == (256, 128)  # GQA: 2 kv heads x 64
    assert shapes["rope_freqs.weight"] == (32,)


def test_rope_permutation(tiny_ckpt: Path, tiny_f16: Path) -> None:
    """attn_q/attn_k rows are in llama.cpp's interleaved rope order; attn_v rows are untouched."""
    from ondevice_convert.safetensors_reader import SafetensorsCheckpoint
    from ondevice_convert.gguf_meta import tensor_rows

    ckpt = SafetensorsCheckpoint(tiny_ckpt)
    t = {x.name: x for x in read_header(tiny_f16).tensors}
    k_hf = ckpt.read_f32("model.layers.0.self_attn.k_proj.weight")
    k_gguf = np.asarray(tensor_rows(tiny_f16, t["blk.0.attn_k.weight"])).view("<f2").astype(np.float32)
    # head 0: gguf row 2j is HF row j, gguf row 2j+1 is HF row j + head_dim/2
    close = dict(rtol=0, atol=2.0 ** -24)
    np.testing.assert_allclose(k_gguf[0], k_hf[0], **close)
    np.testing.assert_allclose(k_gguf[1], k_hf[32], **close)
    np.testing.assert_allclose(k_gguf[2], k_hf[1], **close)
    np.testing.assert_allclose(k_gguf[64 + 1], k_hf[64 + 32], **close)  # head 1
    assert not np.allclose(k_gguf[1], k_hf[1], **close)
    v_hf = ckpt.read_f32("model.layers.0.self_attn.v_proj.weight")
    v_gguf = np.asarray(tensor_rows(tiny_f16, t["blk.0.attn_v.weight"])).view("<f2").astype(np.float32)
    # BF16 -> F16 is exact except for |x| < 2^-14, where F16 is subnormal (spacing 2^-24)
    np.testing.assert_allclose(v_gguf, v_hf, rtol=0, atol=2.0 ** -24)


def test_rope_freqs_match_transformers_llama3_scaling(tiny_ckpt: Path, tiny_f16: Path) -> None:
    """rope_freqs.weight holds divisors: default inv_freq / divisor == transformers' llama3 inv_freq."""
    import torch
    from transformers import LlamaConfig
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    config = LlamaConfig.from_pretrained(str(tiny_ckpt))
    inv_freq, _ = ROPE_INIT_FUNCTIONS["llama3"](config, torch.device("cpu"))
    from ondevice_convert.gguf_meta import tensor_rows

    info = next(t for t in read_header(tiny_f16).tensors if t.name == "rope_freqs.weight")
    factors = np.asarray(tensor_rows(tiny_f16, info)).view("<f4").reshape(-1)
    hp = parse_llama_config(json.loads((tiny_ckpt / "config.json").read_text()))
    np.testing.assert_array_equal(factors, llama3_rope_factors(hp))
    base = 1.0 / (hp.rope_theta ** (np.arange(0, hp.head_dim, 2) / hp.head_dim))
    np.testing.assert_allclose(base / factors, inv_freq.numpy(), rtol=1e-5)
    assert factors.min() == 1.0 and factors.max() == 32.0  # some frequencies scaled, some kept
