"""Write a Llama GGUF from a safetensors checkpoint, one tensor (slice) at a time.

The GGUF header, metadata and tensor table are written first with gguf-py's GGUFWriter; tensor data
then follows in file order, each tensor converted from memory-mapped slices, so peak memory is one
slice (plus one whole q/k projection, which must be reordered for rope), never the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

import gguf
import numpy as np

from .errors import ConversionError
from .hparams import LlamaHParams, llama3_rope_factors
from .safetensors_reader import SafetensorsCheckpoint, bf16_bits_to_f32, f32_to_bf16_bits
from .tensor_map import expected_hf_tensors, map_tensor_name, rope_row_permutation
from .tokenizer import GGUFTokenizer

# outtype -> (GGML tensor type, llama file type, numpy dtype of the written data)
OUTTYPES: dict[str, tuple[gguf.GGMLQuantizationType, gguf.LlamaFileType, np.dtype]] = {
    "f32": (gguf.GGMLQuantizationType.F32, gguf.LlamaFileType.ALL_F32, np.dtype("<f4")),
    "f16": (gguf.GGMLQuantizationType.F16, gguf.LlamaFileType.MOSTLY_F16, np.dtype("<f2")),
    "bf16": (gguf.GGMLQuantizationType.BF16, gguf.LlamaFileType.MOSTLY_BF16, np.dtype("<u2")),
}

FINGERPRINT_KEY = "ondevice.convert.fingerprint"
REVISION_KEY = "ondevice.source.revision"


@dataclass
class ModelInfo:
    """general.* metadata and provenance written into the GGUF."""

    name: str
    source_repo: Optional[str] = None
    revision: Optional[str] = None
    license: Optional[str] = None
    fingerprint: Optional[str] = None
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class _Job:
    gguf_name: str
    hf_name: Optional[str]  # None for generated tensors
    shape: tuple[int, ...]  # numpy order (rows first)
    ggml_type: gguf.GGMLQuantizationType
    transform: Optional[str] = None
    data: Optional[np.ndarray] = None  # generated tensors only


def plan_tensors(ckpt: SafetensorsCheckpoint, hp: LlamaHParams, outtype: str) -> list[_Job]:
    """Check the checkpoint against the config and list every GGUF tensor to write, in order."""
    if outtype not in OUTTYPES:
        raise ConversionError(f"expected outtype one of {', '.join(OUTTYPES)}, got {outtype!r}")
    ggml_type = OUTTYPES[outtype][0]
    has_lm_head = "lm_head.weight" in ckpt
    tied = hp.tie_word_embeddings or not has_lm_head
    missing = [n for n in expected_hf_tensors(hp.n_layers, tied) if n not in ckpt]
    if missing:
        more = f" (and {len(missing) - 5} more)" if len(missing) > 5 else ""
        raise ConversionError(
            f"checkpoint {ckpt.directory} lacks tensors the config needs: {', '.join(missing[:5])}{more}"
        )
    q_rows = hp.n_heads * hp.head_dim
    kv_rows = hp.n_kv_heads * hp.head_dim
    expected_shapes = {
        "token_embd.weight": (hp.vocab_size, hp.hidden_size),
        "output.weight": (hp.vocab_size, hp.hidden_size),
        "attn_q": (q_rows, hp.hidden_size), "attn_k": (kv_rows, hp.hidden_size),
        "attn_v": (kv_rows, hp.hidden_size), "attn_output": (hp.hidden_size, q_rows),
        "ffn_gate": (hp.intermediate_size, hp.hidden_size), "ffn_up": (hp.intermediate_size, hp.hidden_size),
        "ffn_down": (hp.hidden_size, hp.intermediate_size),
    }
    jobs: list[_Job] = []
    factors = llama3_rope_factors(hp)
    if factors is not None:
        jobs.append(_Job("rope_freqs.weight", None, factors.shape, gguf.GGMLQuantizationType.F32, data=factors))
    for name in ckpt.names():
        try:
            m = map_tensor_name(name)
        except KeyError:
            raise ConversionError(
                f"tensor {name} has no GGUF name for a Llama model (unexpected extra weights: "
                "LoRA adapters must be merged first)"
            ) from None
        if m is None or (m.gguf_name == "output.weight" and tied):
            continue
        shape = ckpt.tensors[name].shape
        # "blk.3.attn_q.weight" -> "attn_q"; norms (1-D) must have the hidden size
        key = m.gguf_name.split(".")[2] if m.gguf_name.startswith("blk.") else m.gguf_name
        want = (hp.hidden_size,) if len(shape) == 1 else expected_shapes.get(key)
        if want is not None and tuple(shape) != want:
            raise ConversionError(f"tensor {name}: expected shape {want} from config.json, got {tuple(shape)}")
        t = gguf.GGMLQuantizationType.F32 if len(shape) == 1 else ggml_type
        jobs.append(_Job(m.gguf_name, name, tuple(shape), t, m.transform))
    return jobs


def _nbytes(job: _Job) -> int:
    n = int(np.prod(job.shape, dtype=np.int64))
    return n * (4 if job.ggml_type == gguf.GGMLQuantizationType.F32 else 2)


def _encode(rows_f32: np.ndarray, ggml_type: gguf.GGMLQuantizationType) -> np.ndarray:
    if ggml_type == gguf.GGMLQuantizationType.F32:
        return rows_f32.astype("<f4", copy=False)
    if ggml_type == gguf.GGMLQuantizationType.F16:
        return rows_f32.astype("<f2")
    return f32_to_bf16_bits(rows_f32)


def _slices(ckpt: SafetensorsCheckpoint, job: _Job, hp: LlamaHParams):
    """Yield the job's output data in row slices, already in the GGUF dtype."""
    if job.data is not None:
        yield _encode(job.data, job.ggml_type)
        return
    entry = ckpt.tensors[job.hf_name]
    if job.transform in ("rope_q", "rope_k"):
        n_head = hp.n_heads if job.transform == "rope_q" else hp.n_kv_heads
        w = ckpt.read_f32(job.hf_name)
        yield _encode(w[rope_row_permutation(w.shape[0], n_head)], job.ggml_type)
        return
    if entry.dtype == "BF16" and job.ggml_type == gguf.GGMLQuantizationType.BF16:
        yield from ckpt.raw_rows(job.hf_name)  # a straight copy
        return
    for rows in ckpt.raw_rows(job.hf_name):
        f32 = bf16_bits_to_f32(rows) if entry.dtype == "BF16" else np.asarray(rows, dtype=np.float32)
        yield _encode(f32, job.ggml_type)


def _add_metadata(w: gguf.GGUFWriter, hp: LlamaHParams, tok: GGUFTokenizer, info: ModelInfo, outtype: str) -> None:
    w.add_type(gguf.GGUFType.MODEL)
    w.add_name(info.name)
    if info.source_repo:
        w.add_source_repo_url(f"https://huggingface.co/{info.source_repo}")
        url = f"https://huggingface.co/{info.source_repo}"
        w.add_source_url(url + (f"/tree/{info.revision}" if info.revision else ""))
        w.add_string("general.source.huggingface.repository", info.source_repo)
    if info.revision:
        w.add_string(REVISION_KEY, info.revision)
    if info.license:
        w.add_license(info.license)
    if info.fingerprint:
        w.add_string(FINGERPRINT_KEY, info.fingerprint)
    for k, v in info.extra.items():
        w.add_string(k, v)
    w.add_file_type(OUTTYPES[outtype][1])
    w.add_quantization_version(gguf.GGML_QUANT_VERSION)

    w.add_vocab_size(hp.vocab_size)
    w.add_context_length(hp.context_length)
    w.add_embedding_length(hp.hidden_size)
    w.add_block_count(hp.n_layers)
    w.add_feed_forward_length(hp.intermediate_size)
    w.add_head_count(hp.n_heads)
    w.add_head_count_kv(hp.n_kv_heads)
    w.add_rope_dimension_count(hp.head_dim)
    if hp.head_dim != hp.hidden_size // hp.n_heads:
        w.add_key_length(hp.head_dim)
        w.add_value_length(hp.head_dim)
    w.add_rope_freq_base(hp.rope_theta)
    w.add_layer_norm_rms_eps(hp.rms_norm_eps)

    w.add_tokenizer_model(tok.model)
    w.add_tokenizer_pre(tok.pre)
    w.add_token_list(tok.tokens)
    w.add_token_types(tok.token_types)
    w.add_token_merges(tok.merges)
    for setter, value in ((w.add_bos_token_id, tok.bos_id), (w.add_eos_token_id, tok.eos_id),
                          (w.add_eot_token_id, tok.eot_id), (w.add_eom_token_id, tok.eom_id),
                          (w.add_pad_token_id, tok.pad_id), (w.add_unk_token_id, tok.unk_id)):
        if value is not None:
            setter(int(value))
    w.add_add_space_prefix(False)  # byte-level BPE: the pre-tokenizer table only admits add_prefix_space=false
    w.add_add_bos_token(tok.add_bos)
    w.add_add_eos_token(tok.add_eos)
    if tok.chat_template:
        w.add_chat_template(tok.chat_template)


def write_gguf(
    ckpt: SafetensorsCheckpoint,
    hp: LlamaHParams,
    tok: GGUFTokenizer,
    info: ModelInfo,
    out_path: Path,
    outtype: str = "f16",
    on_tensor: Optional[Callable[[str, int], None]] = None,
) -> int:
    """Write the whole GGUF to out_path (callers pass a temp path). Returns the file size."""
    jobs = plan_tensors(ckpt, hp, outtype)
    w = gguf.GGUFWriter(path=None, arch=gguf.MODEL_ARCH_NAMES[gguf.MODEL_ARCH.LLAMA])
    _add_metadata(w, hp, tok, info, outtype)
    np_dtype = {gguf.GGMLQuantizationType.F32: np.dtype("<f4"), gguf.GGMLQuantizationType.F16: np.dtype("<f2"),
                gguf.GGMLQuantizationType.BF16: np.dtype("<u2")}
    for job in jobs:
        raw = job.ggml_type if job.ggml_type == gguf.GGMLQuantizationType.BF16 else None
        w.add_tensor_info(job.gguf_name, job.shape, np_dtype[job.ggml_type], _nbytes(job), raw_dtype=raw)
    w.write_header_to_file(path=Path(out_path))
    w.write_kv_data_to_file()
    w.write_ti_data_to_file()
    assert w.fout is not None
    fout = w.fout[0]
    try:
        for job in jobs:
            w.write_padding(fout, fout.tell())
            written = 0
            for piece in _slices(ckpt, job, hp):
                piece = np.ascontiguousarray(piece)
                fout.write(memoryview(piece).cast("B"))
                written += piece.nbytes
            if written != _nbytes(job):
                raise ConversionError(f"tensor {job.gguf_name}: expected {_nbytes(job)} bytes, wrote {written}")
            w.write_padding(fout, written)
            if on_tensor:
                on_tensor(job.gguf_name, written)
    finally:
        w.close()
    return Path(out_path).stat().st_size
