"""The random-checkpoint builder: the real Llama-3.2-1B shape, a Llama-3.2 tokenizer that transformers
loads, and checkpoints that are streamed (not built in memory)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ondevice_bench.fixtures.synthetic import (LLAMA_3_2_1B_CONFIG, _tensor_specs, llama_3_2_special_name, tiny_config,
                               write_random_checkpoint)
from ondevice_convert.safetensors_reader import SafetensorsCheckpoint
from ondevice_convert.verify import CHAT_CONVERSATIONS, render_chat


@pytest.mark.nomodel
def test_llama_3_2_1b_shape() -> None:
    c = LLAMA_3_2_1B_CONFIG
    assert (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["num_key_value_heads"],
            c["intermediate_size"], c["vocab_size"]) == (2048, 16, 32, 8, 8192, 128256)
    assert c["rope_scaling"] == {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                                 "original_max_position_embeddings": 8192, "rope_type": "llama3"}
    assert c["tie_word_embeddings"] is True and c["eos_token_id"] == [128001, 128008, 128009]
    n_params = sum(int(np.prod(shape)) for _, shape, _ in _tensor_specs(c))
    assert n_params == 1_235_814_400  # Llama-3.2-1B's parameter count
    t = tiny_config(num_hidden_layers=3)
    assert t["num_hidden_layers"] == 3 and t["vocab_size"] == 128256 and t["rope_scaling"]["rope_type"] == "llama3"


@pytest.mark.nomodel
def test_special_token_names() -> None:
    assert [llama_3_2_special_name(i) for i in (128000, 128004, 128008, 128009, 128010, 128011, 128255)] == [
        "<|begin_of_text|>", "<|finetune_right_pad_id|>", "<|eom_id|>", "<|eot_id|>", "<|python_tag|>",
        "<|reserved_special_token_3|>", "<|reserved_special_token_247|>"]


def test_transformers_loads_tokenizer_and_renders_like_us(tiny_ckpt: Path) -> None:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_ckpt))
    assert len(tok) == 128256 and tok.eos_token == "<|eot_id|>" and tok.bos_token_id == 128000
    template = json.loads((tiny_ckpt / "tokenizer_config.json").read_text())["chat_template"]
    for conv in CHAT_CONVERSATIONS:
        want = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True, date_string="26 Jul 2024")
        assert render_chat(template, conv, date_string="26 Jul 2024") == want
    assert tok("hi")["input_ids"][0] == 128000  # the post-processor adds BOS like Llama 3.2's


def test_deterministic_and_sharded(tmp_path: Path, tokenizer_dir: Path, tiny_ckpt: Path) -> None:
    a = SafetensorsCheckpoint(tiny_ckpt)
    b = SafetensorsCheckpoint(write_random_checkpoint(tmp_path / "b", tiny_config(), seed=1, shard_bytes=16 * 2**20,
                                                      tokenizer_dir=tokenizer_dir))
    assert len(b.files) == 2 and sorted(a.names()) == sorted(b.names())  # embedding alone, then the rest
    for name in ("model.embed_tokens.weight", "model.layers.1.mlp.down_proj.weight", "model.norm.weight"):
        np.testing.assert_array_equal(a.read_f32(name), b.read_f32(name))
    emb = a.read_f32("model.embed_tokens.weight")
    assert 0.9 < emb.std() < 1.1 and a.read_f32("model.norm.weight").mean() == pytest.approx(1.0, abs=0.05)
