"""Read a Hugging Face Llama config.json into the hyper-parameters GGUF needs."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from .errors import MissingFileError, UnsupportedArchitectureError

SUPPORTED_ARCHITECTURES = {"LlamaForCausalLM"}
SUPPORTED_MODEL_TYPES = {"llama"}
SUPPORTED_ROPE_TYPES = {None, "default", "llama3"}


@dataclass
class LlamaHParams:
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    context_length: int
    rms_norm_eps: float
    rope_theta: float
    rope_scaling: Optional[dict[str, Any]]
    tie_word_embeddings: bool
    torch_dtype: str
    raw: dict[str, Any] = field(repr=False, default_factory=dict)


def load_config(directory: Path) -> dict[str, Any]:
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise MissingFileError(f"{directory}: expected config.json (the model's hyper-parameters), it is missing")
    return json.loads(path.read_text())


def parse_llama_config(config: dict[str, Any]) -> LlamaHParams:
    """Validate that config.json describes a Llama causal LM and pull out its hyper-parameters."""
    archs = config.get("architectures") or []
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES or (archs and not set(archs) & SUPPORTED_ARCHITECTURES):
        raise UnsupportedArchitectureError(
            f"expected architecture LlamaForCausalLM (model_type 'llama'), got architectures={archs} "
            f"model_type={model_type!r}; only Llama-architecture checkpoints can be converted"
        )
    missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                           "num_attention_heads") if k not in config]
    if missing:
        raise UnsupportedArchitectureError(f"config.json lacks required keys: {', '.join(missing)}")
    # transformers >= 5 may write rope settings under "rope_parameters"
    rope_params = config.get("rope_parameters") or {}
    rope_scaling = config.get("rope_scaling") or (rope_params if rope_params.get("rope_type", "default") != "default" else None)
    rope_theta = float(config.get("rope_theta", rope_params.get("rope_theta", 10000.0)))
    if rope_scaling is not None:
        rope_type = rope_scaling.get("rope_type", rope_scaling.get("type"))
        if rope_type not in SUPPORTED_ROPE_TYPES:
            raise UnsupportedArchitectureError(
                f"expected rope_scaling type one of default/llama3, got {rope_type!r}"
            )
        if rope_type in (None, "default"):
            rope_scaling = None
    n_heads = int(config["num_attention_heads"])
    hidden = int(config["hidden_size"])
    head_dim = int(config.get("head_dim") or hidden // n_heads)
    if config.get("attention_bias") or config.get("mlp_bias"):
        raise UnsupportedArchitectureError("expected attention_bias=false and mlp_bias=false, got biases")
    return LlamaHParams(
        vocab_size=int(config["vocab_size"]),
        hidden_size=hidden,
        intermediate_size=int(config["intermediate_size"]),
        n_layers=int(config["num_hidden_layers"]),
        n_heads=n_heads,
        n_kv_heads=int(config.get("num_key_value_heads") or n_heads),
        head_dim=head_dim,
        context_length=int(config.get("max_position_embeddings", 2048)),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=rope_theta,
        rope_scaling=rope_scaling,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        torch_dtype=str(config.get("torch_dtype") or config.get("dtype") or "bfloat16"),
        raw=config,
    )


def llama3_rope_factors(hp: LlamaHParams) -> Optional[np.ndarray]:
    """The per-frequency divisors llama.cpp reads from `rope_freqs.weight` for rope_scaling llama3.

    Frequencies with short wavelengths are kept, long ones are divided by `factor`, and the band
    between is interpolated smoothly (the Llama 3.1 recipe). Returns None without llama3 scaling.
    """
    rs = hp.rope_scaling
    if not rs or rs.get("rope_type", rs.get("type")) != "llama3":
        return None
    factor = float(rs.get("factor", 8.0))
    low_ff = float(rs.get("low_freq_factor", 1.0))
    high_ff = float(rs.get("high_freq_factor", 4.0))
    old_ctx = float(rs.get("original_max_position_embeddings", 8192))
    low_wavelen = old_ctx / low_ff
    high_wavelen = old_ctx / high_ff
    dim = hp.head_dim
    freqs = 1.0 / (hp.rope_theta ** (np.arange(0, dim, 2, dtype=np.float64) / dim))
    out = []
    for freq in freqs:
        wavelen = 2 * math.pi / freq
        if wavelen < high_wavelen:
            out.append(1.0)
        elif wavelen > low_wavelen:
            out.append(factor)
        else:
            smooth = (old_ctx / wavelen - low_ff) / (high_ff - low_ff)
            out.append(1.0 / ((1 - smooth) / factor + smooth))
    return np.asarray(out, dtype=np.float32)
