"""Format knowledge as data: Hugging Face Llama tensor names -> GGUF names, and what to do to each."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

# (HF name regex, GGUF name template, transform). Transforms: None, "rope_q", "rope_k".
LLAMA_TENSOR_MAP: list[tuple[str, str, Optional[str]]] = [
    (r"model\.embed_tokens\.weight", "token_embd.weight", None),
    (r"model\.norm\.weight", "output_norm.weight", None),
    (r"lm_head\.weight", "output.weight", None),
    (r"model\.layers\.(\d+)\.input_layernorm\.weight", "blk.{0}.attn_norm.weight", None),
    (r"model\.layers\.(\d+)\.self_attn\.q_proj\.weight", "blk.{0}.attn_q.weight", "rope_q"),
    (r"model\.layers\.(\d+)\.self_attn\.k_proj\.weight", "blk.{0}.attn_k.weight", "rope_k"),
    (r"model\.layers\.(\d+)\.self_attn\.v_proj\.weight", "blk.{0}.attn_v.weight", None),
    (r"model\.layers\.(\d+)\.self_attn\.o_proj\.weight", "blk.{0}.attn_output.weight", None),
    (r"model\.layers\.(\d+)\.post_attention_layernorm\.weight", "blk.{0}.ffn_norm.weight", None),
    (r"model\.layers\.(\d+)\.mlp\.gate_proj\.weight", "blk.{0}.ffn_gate.weight", None),
    (r"model\.layers\.(\d+)\.mlp\.up_proj\.weight", "blk.{0}.ffn_up.weight", None),
    (r"model\.layers\.(\d+)\.mlp\.down_proj\.weight", "blk.{0}.ffn_down.weight", None),
]

# Checkpoint tensors that carry nothing llama.cpp needs (recomputed at load time).
IGNORED_TENSORS: list[str] = [r"model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq"]

_COMPILED = [(re.compile(p + r"\Z"), t, x) for p, t, x in LLAMA_TENSOR_MAP]
_IGNORED = [re.compile(p + r"\Z") for p in IGNORED_TENSORS]


@dataclass(frozen=True)
class TensorMapping:
    hf_name: str
    gguf_name: str
    transform: Optional[str]


def map_tensor_name(hf_name: str) -> Optional[TensorMapping]:
    """The GGUF mapping of one HF tensor, or None if it is to be skipped; unknown names raise KeyError."""
    if any(p.match(hf_name) for p in _IGNORED):
        return None
    for pattern, template, transform in _COMPILED:
        m = pattern.match(hf_name)
        if m:
            return TensorMapping(hf_name, template.format(*m.groups()), transform)
    raise KeyError(hf_name)


def expected_hf_tensors(n_layers: int, tied: bool) -> list[str]:
    """Every HF tensor a Llama checkpoint with this many layers must hold."""
    names = ["model.embed_tokens.weight", "model.norm.weight"]
    if not tied:
        names.append("lm_head.weight")
    per_layer = [
        "input_layernorm.weight", "self_attn.q_proj.weight", "self_attn.k_proj.weight",
        "self_attn.v_proj.weight", "self_attn.o_proj.weight", "post_attention_layernorm.weight",
        "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
    ]
    names += [f"model.layers.{i}.{n}" for i in range(n_layers) for n in per_layer]
    return names


def rope_row_permutation(n_rows: int, n_head: int) -> np.ndarray:
    """Row order that turns HF's half-split rotary layout into llama.cpp's interleaved one.

    HF stores each head's rows as [all first halves, all second halves]; llama.cpp (like Meta's
    original checkpoints) expects pairs (x0, x_half), (x1, x_half+1), ... adjacent.
    out[r] = W[perm[r]].
    """
    head_dim = n_rows // n_head
    idx = np.arange(n_rows).reshape(n_head, 2, head_dim // 2)
    return idx.swapaxes(1, 2).reshape(n_rows)


def inverse_permutation(perm: np.ndarray) -> np.ndarray:
    inv = np.empty_like(perm)
    inv[perm] = np.arange(perm.size)
    return inv
