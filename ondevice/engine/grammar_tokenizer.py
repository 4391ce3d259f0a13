"""The grammar engine's view of the model's vocabulary (llguidance's LLTokenizer), cheap per process.

Building it takes two steps: reading every token's bytes out of llama.cpp (128k ctypes calls for the
Llama 3 vocabulary: about 0.4 s of CPU) and llguidance indexing them (about 0.45 s, most of it the
precomputed "slices" that make each mask fast, so that part is kept). llguidance cannot serialize
the result, but the token bytes are plain data: they are kept on disk under the cache directory,
keyed by the model file's identity (path, size, modification time) and the binding versions, so
every process after the first skips the ctypes loop. A missing, stale or damaged file is rebuilt
(written to a temp file, then renamed); an unwritable cache directory only costs the rebuild.
"""

from __future__ import annotations

import ctypes
import hashlib
from importlib import metadata
from pathlib import Path
from typing import Optional

import llama_cpp
import numpy as np
from llguidance import LLTokenizer

from .llama import LlamaModel
from ..paths import atomic_path, home

_MAGIC = b"ONDVTOK1"
_PIECE_BUFFER = 1 << 14
# llguidance marks special tokens by a leading 0xFF byte, which no UTF-8 text contains.
_SPECIAL_MARK = b"\xff"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def cache_file(model: LlamaModel) -> Path:
    """Where the token bytes of this model file are kept."""
    stat = model.path.stat()
    identity = "|".join([str(model.path.resolve()), str(stat.st_size), str(stat.st_mtime_ns), str(model.n_vocab),
                         _version("llama_cpp_python"), _version("llguidance")])
    return home() / "grammar-tokenizers" / f"{hashlib.sha256(identity.encode()).hexdigest()[:32]}.pieces"


def _piece(model: LlamaModel, token: int, buf: ctypes.Array) -> bytes:
    n = llama_cpp.llama_token_to_piece(model.vocab, token, buf, _PIECE_BUFFER, 0, True)
    if n < 0:
        raise ValueError(f"token {token}: expected a piece of at most {_PIECE_BUFFER} bytes, got {-n}")
    return buf.raw[:n]


def _special(model: LlamaModel, token: int, piece: bytes) -> bool:
    attr = llama_cpp.llama_vocab_get_attr(model.vocab, token)
    return bool(attr & llama_cpp.LLAMA_TOKEN_ATTR_CONTROL or (
        attr & llama_cpp.LLAMA_TOKEN_ATTR_USER_DEFINED and piece.startswith(b"<") and piece.endswith(b">")))


def is_special_token(model: LlamaModel, token: int) -> bool:
    """Whether the grammar engine sees `token` as special (a control token, or a user-defined <tag>),
    as the LLTokenizer built by `build_lltokenizer` will; asked of llama.cpp, without building it."""
    return _special(model, token, _piece(model, token, ctypes.create_string_buffer(_PIECE_BUFFER)))


def token_pieces(model: LlamaModel) -> list[bytes]:
    """Each token's bytes as llguidance wants them (control tokens marked), read from llama.cpp."""
    buf = ctypes.create_string_buffer(_PIECE_BUFFER)
    pieces = []
    for token in range(model.n_vocab):
        piece = _piece(model, token, buf)
        pieces.append(_SPECIAL_MARK + piece if _special(model, token, piece) else piece)
    return pieces


def _encode(pieces: list[bytes]) -> bytes:
    lengths = np.fromiter((len(p) for p in pieces), dtype="<u4", count=len(pieces))
    return _MAGIC + len(pieces).to_bytes(8, "little") + lengths.tobytes() + b"".join(pieces)


def _decode(data: bytes, n_vocab: int) -> Optional[list[bytes]]:
    """The pieces in `data`, or None when it is not a complete file for `n_vocab` tokens."""
    head = len(_MAGIC) + 8
    if len(data) < head or not data.startswith(_MAGIC) or int.from_bytes(data[len(_MAGIC):head], "little") != n_vocab:
        return None
    lengths = np.frombuffer(data, dtype="<u4", count=n_vocab, offset=head) if len(data) >= head + 4 * n_vocab else None
    if lengths is None:
        return None
    start = head + 4 * n_vocab
    ends = start + np.cumsum(lengths, dtype=np.int64)
    if int(ends[-1] if n_vocab else start) != len(data):
        return None
    starts = np.concatenate(([start], ends[:-1])).tolist()
    return [data[a:b] for a, b in zip(starts, ends.tolist())]


def cached_token_pieces(model: LlamaModel) -> list[bytes]:
    """`token_pieces`, from the on-disk cache when it holds this model file's."""
    path = cache_file(model)
    try:
        pieces = _decode(path.read_bytes(), model.n_vocab)
    except OSError:
        pieces = None
    if pieces is not None:
        return pieces
    pieces = token_pieces(model)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(_encode(pieces))
    except OSError:
        pass  # a read-only cache only costs the rebuild next time
    return pieces


def build_lltokenizer(model: LlamaModel, pieces: list[bytes]) -> LLTokenizer:
    """llguidance's tokenizer for `model`, over its `cached_token_pieces`: tokenization itself stays
    llama.cpp's (llama_tokenize)."""
    tokenize = ctypes.cast(llama_cpp.llama_cpp._lib.llama_tokenize, ctypes.c_void_p).value
    return LLTokenizer.from_llamacpp(tokens=pieces, vocab_ptr=model.vocab,
                                     tokenize_fptr=tokenize, eos_token=llama_cpp.llama_vocab_eos(model.vocab))
