"""The reverse direction, for testing the converter on real weights: a llama GGUF (any type gguf-py
can dequantize) -> a Hugging Face Llama checkpoint directory (F32 or BF16 safetensors, config.json,
tokenizer.json rebuilt from the GGUF vocabulary, tokenizer_config.json)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ConversionError, UnsupportedArchitectureError
from .safetensors_reader import SafetensorsWriter, f32_to_bf16_bits
from .tensor_map import LLAMA_TENSOR_MAP, inverse_permutation, rope_row_permutation
from .tokenizer import CONTROL, LLAMA3_SPLIT_REGEX, USER_DEFINED

# llama.cpp pre-tokenizer name -> tokenizers pre_tokenizer JSON (inverse of tokenizer.PRE_TOKENIZERS)
PRE_TOKENIZER_JSON: dict[str, dict[str, Any]] = {
    "llama-bpe": {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": LLAMA3_SPLIT_REGEX}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
    "smollm": {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]},
    "gpt2": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
}


def _field(reader, key: str, default: Any = None) -> Any:
    f = reader.fields.get(key)
    return f.contents() if f is not None else default


def gguf_to_hf(gguf_path: Path, out_dir: Path, dtype: str = "f32") -> Path:
    import gguf
    from gguf.quants import dequantize

    r = gguf.GGUFReader(str(gguf_path))
    arch = _field(r, "general.architecture")
    if arch != "llama":
        raise UnsupportedArchitectureError(f"expected a llama GGUF, got architecture {arch!r}")
    a = "llama."
    n_head = int(_field(r, a + "attention.head_count"))
    n_kv = int(_field(r, a + "attention.head_count_kv", n_head))
    hidden = int(_field(r, a + "embedding_length"))
    tensors = {t.name: t for t in r.tensors}
    tokens: list[str] = _field(r, "tokenizer.ggml.tokens")
    types: list[int] = _field(r, "tokenizer.ggml.token_type")
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama",
        "vocab_size": len(tokens), "hidden_size": hidden,
        "intermediate_size": int(_field(r, a + "feed_forward_length")),
        "num_hidden_layers": int(_field(r, a + "block_count")),
        "num_attention_heads": n_head, "num_key_value_heads": n_kv,
        "head_dim": int(_field(r, a + "rope.dimension_count", hidden // n_head)),
        "max_position_embeddings": int(_field(r, a + "context_length")),
        "rms_norm_eps": float(_field(r, a + "attention.layer_norm_rms_epsilon")),
        "rope_theta": float(_field(r, a + "rope.freq_base", 10000.0)),
        "tie_word_embeddings": "output.weight" not in tensors,
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False,
        "bos_token_id": _field(r, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(r, "tokenizer.ggml.eos_token_id"),
        "torch_dtype": {"f32": "float32", "bf16": "bfloat16"}[dtype],
    }
    if "rope_freqs.weight" in tensors:
        raise ConversionError("rope_freqs (llama3 rope scaling) cannot be turned back into rope_scaling here")

    # GGUF name -> HF name, from the forward table
    reverse: dict[str, tuple[str, Any]] = {}
    for pattern, template, transform in LLAMA_TENSOR_MAP:
        if "{0}" in template:
            for i in range(config["num_hidden_layers"]):
                reverse[template.format(i)] = (pattern.replace(r"(\d+)", str(i)).replace("\\", ""), transform)
        else:
            reverse[template] = (pattern.replace("\\", ""), transform)
    st = {"f32": "F32", "bf16": "BF16"}[dtype]
    specs, order = [], []
    for t in r.tensors:
        hf_name, transform = reverse[t.name]
        shape = tuple(int(x) for x in reversed(t.shape))  # GGUF ne order -> numpy order
        specs.append((hf_name, st, shape))
        order.append((t, hf_name, transform, shape))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with SafetensorsWriter(out_dir / "model.safetensors", specs) as w:
        for t, hf_name, transform, shape in order:
            x = dequantize(np.asarray(t.data), t.tensor_type).astype(np.float32).reshape(shape)
            if transform in ("rope_q", "rope_k"):
                heads = n_head if transform == "rope_q" else n_kv
                x = x[inverse_permutation(rope_row_permutation(shape[0], heads))]
            w.write(hf_name, x if dtype == "f32" else f32_to_bf16_bits(x))
    (out_dir / "config.json").write_text(json.dumps(config, indent=2))

    pre = _field(r, "tokenizer.ggml.pre")
    if _field(r, "tokenizer.ggml.model") != "gpt2" or pre not in PRE_TOKENIZER_JSON:
        raise ConversionError(f"expected a gpt2-style BPE vocabulary with a known pre-tokenizer, got {pre!r}")
    added = [{"id": i, "content": tok, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": types[i] != CONTROL, "special": types[i] == CONTROL}
             for i, tok in enumerate(tokens) if types[i] in (CONTROL, USER_DEFINED)]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": PRE_TOKENIZER_JSON[pre],
        "post_processor": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {tok: i for i, tok in enumerate(tokens)},
                  "merges": list(_field(r, "tokenizer.ggml.merges"))},
    }
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False), encoding="utf-8")

    def name(key: str) -> Any:
        i = _field(r, f"tokenizer.ggml.{key}_token_id")
        return tokens[i] if i is not None else None

    tcfg = {"bos_token": name("bos"), "eos_token": name("eos"), "unk_token": name("unknown"),
            "pad_token": name("padding"), "add_bos_token": bool(_field(r, "tokenizer.ggml.add_bos_token", False)),
            "add_eos_token": bool(_field(r, "tokenizer.ggml.add_eos_token", False)),
            "chat_template": _field(r, "tokenizer.chat_template"), "tokenizer_class": "PreTrainedTokenizerFast",
            "clean_up_tokenization_spaces": False}
    (out_dir / "tokenizer_config.json").write_text(json.dumps({k: v for k, v in tcfg.items() if v is not None},
                                                              indent=2, ensure_ascii=False), encoding="utf-8")
    lic = _field(r, "general.license")
    if lic:
        (out_dir / "README.md").write_text(f"---\nlicense: {lic}\n---\nDequantized from {Path(gguf_path).name}.\n")
    return out_dir
