"""Random-weight Llama checkpoints with real Llama-3.2 config keys and the real Llama 3 tokenizer.

Used by the tests (tiny widths) and the benchmark (the exact Llama-3.2-1B shape, 2.5 GB BF16).
Tensors are generated and written one row slice at a time, so the 1B shape needs ~100 MB of RAM.
"""

from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ondevice.errors import AssetError
from ondevice.paths import assets_dir

from .safetensors_reader import SafetensorsWriter, f32_to_bf16_bits
from .assets import llama3_tokenizer_dir

# config.json of meta-llama/Llama-3.2-1B-Instruct (which the APIGen-FC fine-tune keeps).
LLAMA_3_2_1B_CONFIG: dict[str, Any] = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "head_dim": 64,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 8192,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 16,
    "num_key_value_heads": 8,
    "pretraining_tp": 1,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 32.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0",
    "use_cache": True,
    "vocab_size": 128256,
}

LLAMA_3_2_GENERATION_CONFIG: dict[str, Any] = {
    "bos_token_id": 128000,
    "do_sample": True,
    "eos_token_id": [128001, 128008, 128009],
    "temperature": 0.6,
    "top_p": 0.9,
    "transformers_version": "4.45.0.dev0",
}

# Tiny widths, everything else as Llama-3.2-1B. Widths are multiples of 256 so every K-quant applies
# without llama.cpp's fallback types (K-quant rows must be divisible by 256).
TINY_WIDTHS: dict[str, Any] = {
    "hidden_size": 256,
    "intermediate_size": 512,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 64,
}

CHAT_TEMPLATE_SHA256 = "5816fce10444e03c2e9ee1ef8a4a1ea61ae7e69e438613f3b17b69d0426223a4"
# Llama 3.0 (the npm package) and Llama 3.1/3.2 share the BPE vocabulary and merges; 3.1 renamed
# some reserved special tokens. id -> Llama 3.2 name for ids whose name differs from 3.0's scheme.
LLAMA_3_2_NAMED_SPECIALS = {
    128000: "<|begin_of_text|>", 128001: "<|end_of_text|>", 128004: "<|finetune_right_pad_id|>",
    128006: "<|start_header_id|>", 128007: "<|end_header_id|>", 128008: "<|eom_id|>",
    128009: "<|eot_id|>", 128010: "<|python_tag|>",
}


def llama_3_2_special_name(token_id: int) -> str:
    """Name of a Llama 3.2 special token (ids 128000..128255)."""
    if token_id in LLAMA_3_2_NAMED_SPECIALS:
        return LLAMA_3_2_NAMED_SPECIALS[token_id]
    if token_id in (128002, 128003):
        return f"<|reserved_special_token_{token_id - 128002}|>"
    if token_id == 128005:
        return "<|reserved_special_token_2|>"
    return f"<|reserved_special_token_{token_id - 128008}|>"


def tiny_config(**overrides: Any) -> dict[str, Any]:
    """LLAMA_3_2_1B_CONFIG with tiny widths (and any overrides)."""
    cfg = copy.deepcopy(LLAMA_3_2_1B_CONFIG)
    cfg.update(TINY_WIDTHS)
    cfg.update(overrides)
    return cfg


def chat_template_fixture() -> Path:
    """The Llama 3.2 chat template in shared/fixtures (beside the repository checkout)."""
    here = Path(__file__).resolve()
    for base in (here.parents[1] / ".." / "shared", here.parents[1] / "shared"):
        p = (base / "fixtures" / "llama-3.2-chat-template.jinja").resolve()
        if p.is_file():
            return p
    raise AssetError(
        "expected shared/fixtures/llama-3.2-chat-template.jinja beside the repository checkout; it is missing"
    )


def chat_template() -> str:
    path = chat_template_fixture()
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    if digest != CHAT_TEMPLATE_SHA256:
        raise AssetError(f"{path}: expected sha256 {CHAT_TEMPLATE_SHA256}, got {digest}")
    return data.decode("utf-8")


def write_llama_3_2_tokenizer(out_dir: Path, tokenizer_dir: Optional[Path] = None) -> None:
    """Write Llama-3.2-Instruct-style tokenizer.json and tokenizer_config.json into out_dir."""
    src = Path(tokenizer_dir) if tokenizer_dir else llama3_tokenizer_dir()
    tok = json.loads((src / "tokenizer.json").read_text(encoding="utf-8"))
    for added in tok["added_tokens"]:
        added["content"] = llama_3_2_special_name(added["id"])
    bos = "<|begin_of_text|>"
    tok["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [
                    {"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {bos: {"id": bos, "ids": [128000], "tokens": [bos]}},
            },
        ],
    }
    (Path(out_dir) / "tokenizer.json").write_text(json.dumps(tok, ensure_ascii=False), encoding="utf-8")
    cfg = {
        "added_tokens_decoder": {
            str(a["id"]): {"content": a["content"], "lstrip": False, "normalized": False, "rstrip": False,
                           "single_word": False, "special": True}
            for a in tok["added_tokens"]
        },
        "bos_token": bos,
        "chat_template": chat_template(),
        "clean_up_tokenization_spaces": True,
        "eos_token": "<|eot_id|>",
        "model_input_names": ["input_ids", "attention_mask"],
        "model_max_length": 131072,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (Path(out_dir) / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False), encoding="utf-8")
    (Path(out_dir) / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": bos, "eos_token": "<|eot_id|>"}, indent=2), encoding="utf-8")


# Init std = gain / sqrt(fan_in). Random tiny models have near-flat logits; a unit-variance
# embedding (tied, so also the output layer) and strong attention/MLP outputs make the top-1 token
# decisive and context-dependent, so parity tests are meaningful.
INIT_GAINS: dict[str, float] = {"embed": 1.0, "q": 4.0, "k": 4.0, "v": 2.0, "o": 3.0, "gate": 1.0,
                                "up": 1.0, "down": 3.0, "lm_head": 1.0}


def _tensor_specs(config: dict[str, Any], gains: Optional[dict[str, float]] = None) -> list[tuple[str, tuple[int, ...], float]]:
    """(name, shape, init std) of every tensor; std 0 marks a norm weight (1 + small noise)."""
    g = dict(INIT_GAINS, **(gains or {}))
    h, i = config["hidden_size"], config["intermediate_size"]
    nh, nkv = config["num_attention_heads"], config["num_key_value_heads"]
    hd = config.get("head_dim") or h // nh
    specs: list[tuple[str, tuple[int, ...], float]] = [("model.embed_tokens.weight", (config["vocab_size"], h), g["embed"])]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        specs += [
            (p + "input_layernorm.weight", (h,), 0.0),
            (p + "self_attn.q_proj.weight", (nh * hd, h), g["q"] / np.sqrt(h)),
            (p + "self_attn.k_proj.weight", (nkv * hd, h), g["k"] / np.sqrt(h)),
            (p + "self_attn.v_proj.weight", (nkv * hd, h), g["v"] / np.sqrt(h)),
            (p + "self_attn.o_proj.weight", (h, nh * hd), g["o"] / np.sqrt(nh * hd)),
            (p + "post_attention_layernorm.weight", (h,), 0.0),
            (p + "mlp.gate_proj.weight", (i, h), g["gate"] / np.sqrt(h)),
            (p + "mlp.up_proj.weight", (i, h), g["up"] / np.sqrt(h)),
            (p + "mlp.down_proj.weight", (h, i), g["down"] / np.sqrt(i)),
        ]
    specs.append(("model.norm.weight", (h,), 0.0))
    if not config.get("tie_word_embeddings", False):
        specs.append(("lm_head.weight", (config["vocab_size"], h), g["lm_head"] / np.sqrt(h)))
    return specs


def _random_slices(rng: np.random.Generator, shape: tuple[int, ...], std: float, max_elems: int = 1 << 24):
    rows = shape[0] if len(shape) > 1 else 1
    row_elems = int(np.prod(shape)) // rows
    step = max(1, max_elems // row_elems)
    for start in range(0, rows, step):
        n = min(step, rows - start) * row_elems
        x = rng.standard_normal(n, dtype=np.float32)
        if std == 0.0:
            x = 1.0 + 0.1 * x
        else:
            x *= np.float32(std)
        yield x


def write_random_checkpoint(
    out_dir: Path,
    config: dict[str, Any],
    seed: int = 0,
    dtype: str = "bf16",
    shard_bytes: Optional[int] = None,
    tokenizer_dir: Optional[Path] = None,
    gains: Optional[dict[str, float]] = None,
) -> Path:
    """Write a random-weight Llama checkpoint directory (safetensors + tokenizer + configs).

    dtype: "bf16" | "f16" | "f32". shard_bytes: split into model-0000k-of-0000n.safetensors shards of
    at most this many bytes (with model.safetensors.index.json); None writes model.safetensors.
    """
    st_dtype = {"bf16": "BF16", "f16": "F16", "f32": "F32"}[dtype]
    itemsize = 4 if dtype == "f32" else 2
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    specs = _tensor_specs(config, gains)
    shards: list[list[tuple[str, tuple[int, ...], float]]] = [[]]
    size = 0
    for spec in specs:
        nbytes = int(np.prod(spec[1])) * itemsize
        if shard_bytes and shards[-1] and size + nbytes > shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(spec)
        size += nbytes
    names = (["model.safetensors"] if len(shards) == 1 and not shard_bytes else
             [f"model-{k + 1:05d}-of-{len(shards):05d}.safetensors" for k in range(len(shards))])
    rng = np.random.default_rng(seed)
    weight_map: dict[str, str] = {}
    total = 0
    for fname, shard in zip(names, shards):
        with SafetensorsWriter(out_dir / fname, [(n, st_dtype, s) for n, s, _ in shard]) as w:
            for name, shape, std in shard:
                for x in _random_slices(rng, shape, std):
                    if dtype == "bf16":
                        w.write(name, f32_to_bf16_bits(x))
                    else:
                        w.write(name, x.astype("<f2" if dtype == "f16" else "<f4"))
                weight_map[name] = fname
                total += int(np.prod(shape)) * itemsize
    if len(names) > 1 or shard_bytes:
        (out_dir / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    cfg = dict(config, torch_dtype={"bf16": "bfloat16", "f16": "float16", "f32": "float32"}[dtype])
    (out_dir / "config.json").write_text(json.dumps(cfg, indent=2))
    (out_dir / "generation_config.json").write_text(json.dumps(LLAMA_3_2_GENERATION_CONFIG, indent=2))
    write_llama_3_2_tokenizer(out_dir, tokenizer_dir)
    return out_dir


RANDOM_1B_ALIAS = "random-llama-3.2-1b"


def ensure_random_llama_1b_checkpoint(seed: int = 0) -> Path:
    """The cached 1B-shape random BF16 checkpoint (2.5 GB), built on first use."""
    root = assets_dir() / RANDOM_1B_ALIAS
    ckpt = root / "hf"
    done = root / "hf.complete"
    if done.is_file() and done.read_text() == str(seed):
        return ckpt
    if ckpt.exists():
        shutil.rmtree(ckpt)
    write_random_checkpoint(ckpt, LLAMA_3_2_1B_CONFIG, seed=seed)
    done.write_text(str(seed))
    return ckpt


def ensure_random_llama_1b_gguf(quant: str) -> Path:
    """A random-weight GGUF with the exact Llama-3.2-1B shape, quantized to `quant` (cached)."""
    from .api import convert_checkpoint

    ckpt = ensure_random_llama_1b_checkpoint()
    quant = quant.upper()
    result = convert_checkpoint(ckpt, assets_dir() / RANDOM_1B_ALIAS, quant=None if quant in ("F16", "BF16", "F32") else quant,
                                outtype=quant.lower() if quant in ("F16", "BF16", "F32") else "f16",
                                name=RANDOM_1B_ALIAS, progress=False)
    return result.paths[quant]
