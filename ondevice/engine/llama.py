"""The engine's view of llama.cpp: a model + one context + one batch, over llama-cpp-python's ctypes binding.

We use the binding (``llama_cpp.llama_*``) rather than ``llama_cpp.Llama`` because the decode loop
needs the KV cache (truncate, snapshot, restore) and raw logits, and ``Llama`` keeps an
n_batch x n_vocab float buffer (260 MB for Llama 3's 128k vocabulary) that an edge device can spare.
"""

from __future__ import annotations

import collections
import ctypes
import functools
import os
import sys
import threading
from pathlib import Path
from typing import Optional, Sequence

import llama_cpp
import numpy as np

from . import hardware, load_failure
from ..errors import ContextOverflowError, ModelFileError, OndeviceError, QueryError
from ..gguf import GGUFError, read_header
from ..settings import LoadSettings

# Set by the model-free test tier (tests/conftest.py) so that a test, or a process it starts, that would
# load a model fails instead of silently making the fast tier slow.
NO_MODEL_LOADS_ENV = "ONDEVICE_NO_MODEL_LOADS"

_LOG_LINES: collections.deque[str] = collections.deque(maxlen=50)
_LOG_LOCK = threading.Lock()
_BUFFER_LINES: list[str] = []  # this load's "model buffer size" and architecture lines (a load logs ~2000 lines)
_BACKEND_READY = False


_ECHO_LOG = False  # Settings.verbose: llama.cpp's log also goes to stderr
_INTERRUPTED = False  # Ctrl-C landed inside the log callback


@llama_cpp.llama_log_callback
def _log_callback(level: int, text: bytes, user_data: ctypes.c_void_p) -> None:
    # Keep llama.cpp quiet but remember what it said, so a load failure can say why.
    global _INTERRUPTED
    try:
        decoded = text.decode("utf-8", errors="replace")
        with _LOG_LOCK:
            _LOG_LINES.append(decoded)
            if "model buffer size" in decoded or "general.architecture" in decoded:
                _BUFFER_LINES.append(decoded)
        if _ECHO_LOG:
            sys.stderr.write(decoded)
    except KeyboardInterrupt:  # ctypes would swallow it: re-raised by check_interrupt() after the C call
        _INTERRUPTED = True
    except Exception:  # never raise into C
        pass


def check_interrupt() -> None:
    """Raise the KeyboardInterrupt that arrived while llama.cpp was calling back into Python."""
    global _INTERRUPTED
    if _INTERRUPTED:
        _INTERRUPTED = False
        raise KeyboardInterrupt


def init_backend(verbose: bool = False) -> None:
    """Start llama.cpp's backend once, with ondevice's log callback (quiet, kept for error messages;
    `verbose` echoes it to stderr)."""
    global _BACKEND_READY, _ECHO_LOG
    _ECHO_LOG = verbose
    # Set at every load: other code in the process (the quantizer) may have swapped the global callback.
    llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    if not _BACKEND_READY:
        llama_cpp.llama_backend_init()
        hardware.ensure_backends()  # a portable build's CPU variant (and any GPU module) before the first query
        _BACKEND_READY = True


def _recent_log(containing: Sequence[str] = ("error", "failed", "invalid", "corrupt", "out of bounds", "not within",
                                             load_failure.NO_BACKEND)) -> str:
    with _LOG_LOCK:
        lines = [line.strip() for line in _LOG_LINES if any(word in line.lower() for word in containing)]
        _LOG_LINES.clear()
    return "; ".join(dict.fromkeys(lines))[-600:]


def check_gguf_header(path: Path) -> None:
    """Refuse files that are not GGUF before llama.cpp sees them, with a message saying what was found."""
    try:
        read_header(path, keys=(), tensors=False)
    except OSError as exc:
        raise ModelFileError(f"cannot read model file {path}: {exc.strerror}") from None
    except GGUFError as exc:
        raise ModelFileError(f"{path}: {exc}; re-download it, or convert a safetensors checkpoint with "
                             "`ondevice convert`") from None


class LlamaModel:
    """A loaded GGUF model with one inference context and a token batch.

    With `settings.n_parallel` = 1 the context holds one sequence (0). With N > 1 it holds N
    sequences (slots 0..N-1, for the engine), each in its own KV stream of n_ctx cells.
    """

    def __init__(self, path: Path, settings: LoadSettings):
        init_backend(settings.verbose)
        self.path = Path(path)
        self.settings = settings
        check_gguf_header(self.path)
        if settings.n_gpu_layers != 0 and not llama_cpp.llama_supports_gpu_offload():
            raise OndeviceError(
                f"n_gpu_layers={settings.n_gpu_layers} but this llama-cpp-python build has no GPU backend: "
                "reinstall it with CMAKE_ARGS=\"-DGGML_METAL=on\" (macOS) or \"-DGGML_CUDA=on\" (NVIDIA), "
                "or use n_gpu_layers=0"
            )
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = settings.n_gpu_layers if settings.n_gpu_layers >= 0 else 2**31 - 1
        mparams.use_extra_bufts = settings.repack
        # Not the AMX buffer type (it crashes; ONDEVICE_AMX=1 opts back in): see hardware.py.
        self.placement = hardware.place_weights(settings.repack)
        with _LOG_LOCK:
            _BUFFER_LINES.clear()
        if os.environ.get(NO_MODEL_LOADS_ENV):  # not an OndeviceError: a test must not take it for a clean refusal
            raise RuntimeError(f"{NO_MODEL_LOADS_ENV} is set, so this process loads no model (asked for {path}); "
                               f"unset it to load one")
        self.model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        check_interrupt()
        with _LOG_LOCK:  # where the weights went, MiB each: {"CPU_Mapped": 463.0, "CPU_REPACK": 28.1}
            self.weight_buffers = hardware.weight_buffers(_BUFFER_LINES)
        if not self.model:
            with _LOG_LOCK:
                log = _BUFFER_LINES + list(_LOG_LINES)
            raise ModelFileError(load_failure.explain(self.path, _recent_log(), log))
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self.vocab)
        self.n_ctx_train = llama_cpp.llama_model_n_ctx_train(self.model)
        if self.n_ctx_train > 0 and settings.n_ctx > self.n_ctx_train:
            llama_cpp.llama_model_free(self.model)
            self.model = None
            raise ContextOverflowError(
                f"n_ctx {settings.n_ctx} is more than {self.path.name} was trained on ({self.n_ctx_train} tokens): "
                f"pass --n-ctx {self.n_ctx_train} or less"
            )

        cparams = llama_cpp.llama_context_default_params()
        cparams.n_ctx = settings.n_ctx
        cparams.n_batch = settings.n_batch
        cparams.n_ubatch = settings.n_batch
        self.n_parallel = settings.n_parallel
        cparams.n_seq_max = self.n_parallel
        if self.n_parallel > 1:
            # Not unified (kv_unified False, the default): llama.cpp splits the cells into one stream per
            # sequence, so a sequence's cells lie as they would alone (position i in cell i) whatever
            # the others do, and its attention sums in the same order: answers do not depend on the
            # neighbours. (In one unified pool, cells freed by one request are reused by another out of
            # position order, and the answers changed with the load.)
            cparams.n_ctx = settings.n_ctx * self.n_parallel
        cparams.n_threads = settings.threads
        cparams.n_threads_batch = settings.threads
        self.ctx = llama_cpp.llama_init_from_model(self.model, cparams)
        check_interrupt()
        if not self.ctx:
            llama_cpp.llama_model_free(self.model)
            self.model = None
            raise OndeviceError(
                f"llama.cpp could not create a context of {settings.n_ctx} tokens for {self.path}: "
                f"lower n_ctx (the model was trained on {self.n_ctx_train}) or free memory"
                + (f" (llama.cpp: {_recent_log()})" if _LOG_LINES else "")
            )
        self.n_ctx = llama_cpp.llama_n_ctx(self.ctx) // self.n_parallel  # per sequence
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        # llama.cpp may clamp the batch to a small context (n_ctx=330 gives n_batch 330): every batch we
        # send must fit what it kept, or llama_decode aborts the process.
        self.n_batch = min(settings.n_batch, llama_cpp.llama_n_batch(self.ctx), llama_cpp.llama_n_ubatch(self.ctx))
        self.batch = llama_cpp.llama_batch_init(settings.n_batch, 0, 1)
        self.seq_tokens: list[list[int]] = [[] for _ in range(self.n_parallel)]  # what each sequence holds, in order
        # Where each llama_decode that wrote a sequence began and ended: a position's KV depends on the
        # rows it was evaluated with (rounding), so reuse needs the same cuts as a fresh evaluation.
        self.seq_cuts: list[list[int]] = [[0] for _ in range(self.n_parallel)]
        self.decode_calls = 0  # llama_decode calls so far (decode steps are counted with it)

    # --- metadata -------------------------------------------------------------------------------
    def chat_template(self) -> Optional[str]:
        raw = llama_cpp.llama_model_chat_template(self.model, None)
        return raw.decode("utf-8") if raw else None

    @property
    def bos_text(self) -> str:
        return self.token_text(llama_cpp.llama_vocab_bos(self.vocab))

    @property
    def eos_text(self) -> str:
        return self.token_text(llama_cpp.llama_vocab_eos(self.vocab))

    def is_eog(self, token: int) -> bool:
        """Whether `token` ends generation (asked per token: a set over the vocabulary costs a one-shot call
        128k binding calls at load)."""
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return self.detokenize([token], special=True).decode("utf-8", errors="replace")

    # --- text <-> tokens --------------------------------------------------------------------------
    @functools.cached_property
    def control_tokens(self) -> dict[str, int]:
        """The tokens that only special-token parsing produces (control, unknown), by their text."""
        kinds = llama_cpp.LLAMA_TOKEN_ATTR_CONTROL | llama_cpp.LLAMA_TOKEN_ATTR_UNKNOWN
        return {self.token_text(t): t for t in range(self.n_vocab) if llama_cpp.llama_vocab_get_attr(self.vocab, t) & kinds}

    def tokenize(self, text: str, special: bool = True) -> list[int]:
        """Tokens of `text` with special tokens parsed (no BOS added: chat templates write it)."""
        try:
            data = text.encode("utf-8")
        except UnicodeEncodeError as exc:  # lone surrogates: undecodable bytes in a query, history or tools
            raise QueryError(f"the prompt holds text that is not valid UTF-8 ({text[max(0, exc.start - 20):exc.end]!r}): "
                             "pass the query, history and tools as UTF-8") from None
        n_max = len(data) + 8
        buf = (llama_cpp.llama_token * n_max)()
        n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, n_max, False, special)
        if n < 0:
            n_max = -n
            buf = (llama_cpp.llama_token * n_max)()
            n = llama_cpp.llama_tokenize(self.vocab, data, len(data), buf, n_max, False, special)
        return list(buf[:n])

    def detokenize(self, tokens: Sequence[int], special: bool = True) -> bytes:
        out = bytearray()
        buf = ctypes.create_string_buffer(256)
        for token in tokens:
            n = llama_cpp.llama_token_to_piece(self.vocab, token, buf, 256, 0, special)
            if n < 0:
                big = ctypes.create_string_buffer(-n)
                n = llama_cpp.llama_token_to_piece(self.vocab, token, big, -n, 0, special)
                out += big.raw[:n]
            else:
                out += buf.raw[:n]
        return bytes(out)

    # --- the KV cache -----------------------------------------------------------------------------
    @property
    def tokens(self) -> list[int]:
        """What the KV cache of sequence 0 holds, in order."""
        return self.seq_tokens[0]

    def truncate(self, n: int, seq: int = 0) -> None:
        """Forget every cached token of sequence `seq` from position n on."""
        if n < len(self.seq_tokens[seq]):
            llama_cpp.llama_memory_seq_rm(self.memory, seq, n, -1)
            del self.seq_tokens[seq][n:]
            self.seq_cuts[seq] = [c for c in self.seq_cuts[seq] if c <= n]

    def _cut(self, seq: int, start: int, end: int) -> None:
        cuts = self.seq_cuts[seq]
        if cuts[-1] != start:
            cuts.append(start)
        cuts.append(end)

    def eval_many(self, runs: Sequence[tuple[int, Sequence[int], int]]) -> list[int]:
        """Append each run's tokens to its sequence, all in one llama_decode, with logits after each of
        a run's last n_logits tokens (run = (seq, tokens, n_logits)); returns, per run, the batch row
        of its last token (for `logits`). The runs together must fit n_batch."""
        total = sum(len(tokens) for _, tokens, _ in runs)
        if not 0 < total <= self.n_batch:
            raise ValueError(f"eval_many: expected 1..{self.n_batch} tokens, got {total}")
        batch = self.batch
        rows = []
        i = 0
        for seq, tokens, n_logits in runs:
            held = self.seq_tokens[seq]
            if len(held) + len(tokens) > self.n_ctx:
                raise ContextOverflowError(f"{len(held) + len(tokens)} tokens do not fit the context of {self.n_ctx}")
            for j, token in enumerate(tokens):
                batch.token[i] = token
                batch.pos[i] = len(held) + j
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = j >= len(tokens) - n_logits
                i += 1
            rows.append(i - 1)
        batch.n_tokens = total
        rc = llama_cpp.llama_decode(self.ctx, batch)
        self.decode_calls += 1
        check_interrupt()
        if rc != 0:
            raise OndeviceError(f"llama_decode failed with code {rc} for a batch of {total} tokens in {len(runs)} sequences")
        for seq, tokens, _ in runs:
            self._cut(seq, len(self.seq_tokens[seq]), len(self.seq_tokens[seq]) + len(tokens))
            self.seq_tokens[seq].extend(tokens)
        return rows

    def eval(self, tokens: Sequence[int], n_logits: int = 1, seq: int = 0) -> None:
        """Append `tokens` to the KV cache, with logits after each of the last `n_logits` of them.

        Afterwards `logits(-1)` is the next-token distribution, `logits(-2)` the one before the last
        token, and so on. The tokens go in batches of n_batch; the last batch holds the last n_batch
        tokens, so up to n_batch rows of logits can be asked for.
        """
        if not tokens:
            return
        held = self.seq_tokens[seq]
        if len(held) + len(tokens) > self.n_ctx:
            raise ContextOverflowError(
                f"{len(held) + len(tokens)} tokens do not fit the context of {self.n_ctx}: "
                f"raise n_ctx (--n-ctx; the model was trained on {self.n_ctx_train}) or shorten the tools or history"
            )
        step = self.n_batch
        if not 1 <= n_logits <= min(step, len(tokens)):
            raise ValueError(f"n_logits: expected 1..{min(step, len(tokens))}, got {n_logits}")
        chunks = [tokens[i:i + step] for i in range(0, len(tokens), step)]
        if len(chunks[-1]) < n_logits:  # the rows asked for must all be in the last batch
            head = len(tokens) - step
            chunks = [tokens[i:min(i + step, head)] for i in range(0, head, step)] + [tokens[head:]]
        batch = self.batch
        for c, chunk in enumerate(chunks):
            pos0 = len(held)
            batch.n_tokens = len(chunk)
            first_logit = len(chunk) - (n_logits if c == len(chunks) - 1 else 1)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = pos0 + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = seq
                batch.logits[i] = i >= first_logit
            rc = llama_cpp.llama_decode(self.ctx, batch)
            self.decode_calls += 1
            check_interrupt()
            if rc != 0:
                raise OndeviceError(f"llama_decode failed with code {rc} at position {pos0}")
            self._cut(seq, pos0, pos0 + len(chunk))
            held.extend(chunk)

    def logits(self, row: int = -1) -> np.ndarray:
        """Logits after a token of the last batch (-1: the last; see `eval`). A view into llama.cpp's
        buffer, valid until the next evaluation: copy to keep."""
        ptr = llama_cpp.llama_get_logits_ith(self.ctx, row)
        if not ptr:
            raise OndeviceError(f"llama.cpp holds no logits for row {row} of the last batch")
        return np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))

    def snapshot(self, seq: int = 0) -> bytes:
        """The state (KV cache) of sequence `seq`, to restore later with `restore`."""
        size = llama_cpp.llama_state_seq_get_size(self.ctx, seq)
        buf = ctypes.create_string_buffer(size)
        # One copy out of llama.cpp (slicing a c_uint8 array would build a list of ints: 0.2 s for 9 MB).
        written = llama_cpp.llama_state_seq_get_data(self.ctx, ctypes.cast(buf, ctypes.POINTER(ctypes.c_uint8)), size, seq)
        return buf.raw[:written]

    def restore(self, state: bytes, tokens: Sequence[int], cuts: Sequence[int], seq: int = 0) -> bool:
        """Replace sequence `seq` with a snapshot holding `tokens`, evaluated with `cuts` (see
        seq_cuts); False if llama.cpp refused it."""
        llama_cpp.llama_memory_seq_rm(self.memory, seq, 0, -1)
        self.seq_tokens[seq], self.seq_cuts[seq] = [], [0]
        buf = (ctypes.c_uint8 * len(state)).from_buffer_copy(state)
        if llama_cpp.llama_state_seq_set_data(self.ctx, buf, len(state), seq) == 0:
            return False
        self.seq_tokens[seq], self.seq_cuts[seq] = list(tokens), list(cuts)
        return True

    def close(self) -> None:
        if getattr(self, "batch", None) is not None:
            llama_cpp.llama_batch_free(self.batch)
            self.batch = None
        if getattr(self, "ctx", None):
            llama_cpp.llama_free(self.ctx)
            self.ctx = None
        if getattr(self, "model", None):
            llama_cpp.llama_model_free(self.model)
            self.model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass
