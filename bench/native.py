"""llama.cpp's own decode speed on a GGUF: a plain llama_decode loop, no ondevice code at all.

This is the reference the engine's decode speed is compared with. The llama-cpp-python wheel does not
ship llama-bench, so the loop is written here against the raw C API (``llama_cpp.llama_*``): the
prompt is evaluated in one batch, then each step samples with llama.cpp's own greedy sampler
(``llama_sampler_init_greedy`` / ``llama_sampler_sample``, in C) and evaluates that one token with
``llama_decode`` on a 1-token batch, the way llama-bench's ``tg`` test and llama-cli decode. The same
context settings as the engine (n_ctx, n_batch, threads) are used, so only the per-token work differs.

Two figures come back: our wall-clock time of the loop, and llama.cpp's own ``llama_perf_context``
accounting of the same decode calls (t_eval_ms / n_eval), which excludes Python entirely.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any, Sequence

from ondevice.engine.llama import check_interrupt, init_backend


def _quiet() -> None:
    # ondevice's own log callback: quiet, and a Ctrl-C landing inside it is not lost (check_interrupt)
    global _LOG_CB
    init_backend()
    _LOG_CB = True


_LOG_CB: Any = None


def native_decode(
    path: Path,
    prompt_tokens: Sequence[int],
    n_tokens: int,
    *,
    n_ctx: int = 4096,
    n_batch: int = 512,
    threads: int = 2,
    repeats: int = 3,
) -> dict[str, Any]:
    """Decode `n_tokens` greedily after `prompt_tokens`, `repeats` times; medians of tok/s.

    Each repeat clears the KV cache, re-evaluates the prompt (timed separately as prompt tok/s) and
    then times the decode loop alone.
    """
    import llama_cpp

    if _LOG_CB is None:
        _quiet()
    llama_cpp.llama_backend_init()
    mparams = llama_cpp.llama_model_default_params()
    mparams.n_gpu_layers = 0
    from ondevice.engine.hardware import place_weights

    place_weights()  # the runtime's placement (no AMX: it crashes), so the comparison is like for like
    t0 = time.perf_counter()
    model = llama_cpp.llama_model_load_from_file(str(path).encode(), mparams)
    check_interrupt()
    if not model:
        raise RuntimeError(f"llama.cpp could not load {path}")
    cparams = llama_cpp.llama_context_default_params()
    cparams.n_ctx = n_ctx
    cparams.n_batch = n_batch
    cparams.n_ubatch = n_batch
    cparams.n_seq_max = 1
    cparams.n_threads = threads
    cparams.n_threads_batch = threads
    cparams.no_perf = False
    ctx = llama_cpp.llama_init_from_model(model, cparams)
    if not ctx:
        llama_cpp.llama_model_free(model)
        raise RuntimeError(f"llama.cpp could not create a context of {n_ctx} for {path}")
    load_s = time.perf_counter() - t0
    memory = llama_cpp.llama_get_memory(ctx)
    sparams = llama_cpp.llama_sampler_chain_default_params()
    sparams.no_perf = False
    sampler = llama_cpp.llama_sampler_chain_init(sparams)
    llama_cpp.llama_sampler_chain_add(sampler, llama_cpp.llama_sampler_init_greedy())
    batch = llama_cpp.llama_batch_init(max(n_batch, 1), 0, 1)
    one = (llama_cpp.llama_token * 1)()

    def eval_prompt() -> None:
        for start in range(0, len(prompt_tokens), n_batch):
            chunk = prompt_tokens[start:start + n_batch]
            batch.n_tokens = len(chunk)
            for i, tok in enumerate(chunk):
                batch.token[i] = tok
                batch.pos[i] = start + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = 0
            batch.logits[len(chunk) - 1] = 1
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError("llama_decode failed on the prompt")

    wall_rates, perf_rates, prompt_rates, sampled = [], [], [], []
    try:
        # warm-up (discarded): first use of a context allocates compute buffers and faults weights in
        llama_cpp.llama_memory_clear(memory, True)
        eval_prompt()
        for _step in range(4):
            one[0] = llama_cpp.llama_sampler_sample(sampler, ctx, -1)
            llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1))
        for _ in range(max(1, repeats)):
            llama_cpp.llama_memory_clear(memory, True)
            t0 = time.perf_counter()
            eval_prompt()
            prompt_rates.append(len(prompt_tokens) / (time.perf_counter() - t0))
            llama_cpp.llama_perf_context_reset(ctx)
            tokens = []
            t0 = time.perf_counter()
            for _step in range(n_tokens):
                tok = llama_cpp.llama_sampler_sample(sampler, ctx, -1)
                tokens.append(tok)
                one[0] = tok
                if llama_cpp.llama_decode(ctx, llama_cpp.llama_batch_get_one(one, 1)) != 0:
                    raise RuntimeError("llama_decode failed while decoding")
            wall = time.perf_counter() - t0
            perf = llama_cpp.llama_perf_context(ctx)
            wall_rates.append(n_tokens / wall)
            if perf.n_eval > 0 and perf.t_eval_ms > 0:
                perf_rates.append(perf.n_eval / (perf.t_eval_ms / 1000.0))
            sampled = tokens
    finally:
        llama_cpp.llama_batch_free(batch)
        llama_cpp.llama_sampler_free(sampler)
        llama_cpp.llama_free(ctx)
        llama_cpp.llama_model_free(model)
    return {
        "method": "raw llama_decode loop (1-token batches) + llama.cpp greedy sampler, via llama-cpp-python's C binding",
        "load_s": round(load_s, 3),
        "prompt_tokens": len(prompt_tokens),
        "prompt_tok_s": round(statistics.median(prompt_rates), 1),
        "decode_tokens": n_tokens,
        "decode_tok_s": round(statistics.median(wall_rates), 2),
        "decode_tok_s_all": [round(r, 2) for r in wall_rates],
        "llama_perf_eval_tok_s": round(statistics.median(perf_rates), 2) if perf_rates else None,
        "first_tokens": list(sampled[:8]),
    }
