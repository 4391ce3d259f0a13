"""Quantization quality: `ondevice bench quant`.

The stand-in (SmolLM2-135M-Instruct, shipped as Q4_1) is rebuilt as a full-precision Hugging Face
checkpoint (``ondevice_bench.fixtures.gguf_to_hf``: dequantize every tensor to F32), converted by our converter to an F16
GGUF and quantized by it to each quant type. Every quantized file is then compared with the F16 file on
a fixed text set (the card's examples with their answers, and the first case of five BFCL categories),
position by position:

- KL divergence KL(P_f16 || P_quant) of the next-token distributions (nats; mean, and the 99th
  percentile over positions),
- top-1 agreement: the share of positions where both pick the same most likely token,

beside the file size and llama.cpp's decode speed (``ondevice_bench.native``) for that file.

The F16 reference is itself the dequantized Q4_1 weights, so it measures the loss each quant type adds
on top of those weights, not against the original BF16 release.
"""

from __future__ import annotations

from ondevice import wait_policy  # noqa: F401  (before llama.cpp loads: see ondevice/wait_policy.py)

import json
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np

from ondevice_bench.examples import PINNED_DATE

QUANT_DIR_NAME = "bench-quant"
BFCL_TEXT_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance")


def ensure_fp_ggufs(quants: list[str], model: str, progress: bool = True) -> dict[str, Path]:
    """F16 + each quant of `model` rebuilt at full precision (cached under assets_dir())."""
    from ondevice_convert.api import convert_checkpoint
    from ondevice_bench.fixtures.gguf_to_hf import gguf_to_hf
    from ondevice.models.catalog import resolve
    from ondevice.paths import assets_dir

    from .common import log

    src = resolve(model).path
    root = assets_dir() / QUANT_DIR_NAME / src.stem
    ckpt = root / "hf-f32"
    marker = root / "hf-f32.complete"
    if not (marker.is_file() and marker.read_text() == src.name):
        log(f"[quant] dequantizing {src.name} to a full-precision checkpoint...")
        gguf_to_hf(src, ckpt, dtype="f32")
        marker.write_text(src.name)
    log(f"[quant] converting to F16 and quantizing to {', '.join(quants)} (cached after the first run)...")
    # The F16 file first, on its own: a quantize call whose outputs are all up to date does not list it.
    paths = dict(convert_checkpoint(ckpt, root / "gguf", quant=None, outtype="f16", name="standin-fp",
                                    progress=False).paths)
    paths.update(convert_checkpoint(ckpt, root / "gguf", quant=quants, outtype="f16", name="standin-fp",
                                    progress=False).paths)
    return {k.upper(): Path(v) for k, v in paths.items()}


def fixed_texts(render: Any, limit: Optional[int] = None) -> list[tuple[str, str]]:
    """(label, text) pairs: the card's examples with their answers, then BFCL prompts."""
    from ondevice_bench.examples import example_names, load_example
    from ondevice.formats.prompt import prepare_messages

    texts = []
    for name in example_names():
        tools, data = load_example(name)
        if not data.get("queries"):
            continue
        answer = (data.get("card_answers") or [None])[0]
        prompt = render(prepare_messages(data["queries"][0], tools))
        suffix = answer_text(answer)
        texts.append((f"example:{name}", prompt + suffix))
    try:
        from . import bfcl

        for category in BFCL_TEXT_CATEGORIES:
            case = bfcl.load_category(category)[0]
            query, history = bfcl.to_query_and_history(case)
            texts.append((f"bfcl:{case.id}", render(prepare_messages(query, case.tools, history))))
    except Exception as exc:  # bfcl-eval missing: the examples alone still make a text set
        from .common import log

        log(f"[quant] BFCL texts skipped ({exc})")
    return texts[:limit] if limit else texts


def answer_text(answer: Any) -> str:
    """The card's answer as the model writes it: a call list in <tool_call>, free text as is."""
    if answer is None:
        return ""
    if isinstance(answer, str):
        return answer
    return f"<tool_call>{json.dumps(answer)}</tool_call>"


def _log_softmax(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.float64)
    m = x.max(axis=-1, keepdims=True)
    return x - m - np.log(np.exp(x - m).sum(axis=-1, keepdims=True))


def all_logits(llm: Any, tokens: list[int]) -> np.ndarray:
    llm.reset()
    llm.eval(tokens)
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def compare(ref_logits: np.ndarray, q_logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per position: KL(ref || q) in nats, and whether the argmaxes agree."""
    lp = _log_softmax(ref_logits)
    lq = _log_softmax(q_logits)
    kl = (np.exp(lp) * (lp - lq)).sum(axis=-1)
    agree = ref_logits.argmax(axis=-1) == q_logits.argmax(axis=-1)
    return kl, agree


def weight_error(f16: Path, quant: Path) -> dict[str, Any]:
    """What the file holds: the share of weights in each ggml type (llama.cpp falls back from k-quants
    to Q5_0/Q5_1/Q8_0 for rows not a multiple of 256 wide, as SmolLM2's 576 are), and the RMS error
    of all weights against the F16 file, relative to their RMS."""
    from ondevice_convert.report import quantization_errors

    errors = quantization_errors(f16, quant)
    n = sum(e.n_elements for e in errors)
    by_type: dict[str, int] = {}
    for e in errors:
        by_type[e.qtype] = by_type.get(e.qtype, 0) + e.n_elements
    se = sum(e.rms_err ** 2 * e.n_elements for e in errors)
    sr = sum(e.ref_rms ** 2 * e.n_elements for e in errors)
    return {
        "tensor_types": {k: round(v / n, 3) for k, v in sorted(by_type.items(), key=lambda kv: -kv[1])},
        "weight_rel_rms_err": round((se / sr) ** 0.5, 5) if sr else 0.0,
    }


def run(args: Any) -> int:
    from llama_cpp import Llama

    from ondevice import Settings, ToolCaller

    from . import RESULTS_DIR
    from .common import command_line, git_commit, log, machine_info, utc_now, write_json
    from .native import native_decode

    quants = [q.strip().upper() for q in args.quants.split(",") if q.strip()]
    paths = ensure_fp_ggufs(quants, args.model)
    threads = args.threads or Settings().threads

    caller = ToolCaller.load(str(paths["F16"]), Settings(n_ctx=args.n_ctx, n_threads=threads, date_string=PINNED_DATE))
    texts = fixed_texts(caller.render, args.limit)
    tokenized = [(label, caller.model.tokenize(text)[: args.n_ctx]) for label, text in texts]
    caller.close()
    n_positions = sum(len(t) for _, t in tokenized)
    log(f"[quant] {len(tokenized)} texts, {n_positions} positions; reference F16 = {paths['F16'].name}")

    def load(path: Path) -> Any:
        from ondevice.engine.hardware import place_weights

        place_weights()  # no AMX weights (they crash), as the runtime
        return Llama(str(path), n_ctx=args.n_ctx, n_threads=threads, n_batch=512, logits_all=True, verbose=False)

    # Reference logits, text by text, kept as log-probs in float32 to bound memory.
    t0 = time.perf_counter()
    ref = load(paths["F16"])
    ref_logits = [all_logits(ref, toks) for _, toks in tokenized]
    del ref
    log(f"[quant] F16 reference done ({time.perf_counter() - t0:.0f}s)")

    rows: dict[str, Any] = {}
    for quant in ["F16"] + quants:
        path = paths[quant]
        t0 = time.perf_counter()
        kls, agrees = [], []
        if quant != "F16":
            llm = load(path)
            for (label, toks), ref_l in zip(tokenized, ref_logits):
                kl, agree = compare(ref_l, all_logits(llm, toks))
                kls.append(kl)
                agrees.append(agree)
            del llm
        prompt = tokenized[0][1]
        speed = native_decode(path, prompt, 64, n_ctx=args.n_ctx, threads=threads, repeats=2)
        row: dict[str, Any] = {
            "file": path.name,
            "size_mib": round(path.stat().st_size / 2**20, 1),
            "decode_tok_s": speed["decode_tok_s"],
            "prompt_tok_s": speed["prompt_tok_s"],
        }
        row.update(weight_error(paths["F16"], path))
        if kls:
            kl_all = np.concatenate(kls)
            agree_all = np.concatenate(agrees)
            row.update(
                kl_mean=round(float(kl_all.mean()), 5),
                kl_p99=round(float(np.percentile(kl_all, 99)), 5),
                top1_agreement=round(float(agree_all.mean()), 4),
            )
        else:
            row.update(kl_mean=0.0, kl_p99=0.0, top1_agreement=1.0)
        rows[quant] = row
        log(f"[quant] {quant}: {row['size_mib']} MiB, KL {row['kl_mean']}, top-1 {row['top1_agreement']}, "
            f"{row['decode_tok_s']} tok/s ({time.perf_counter() - t0:.0f}s)")

    summary = {
        "benchmark": "quant",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": f"{args.model} rebuilt at full precision (dequantized to F32 -> ondevice convert -> F16)",
        "reference": "F16",
        "texts": [label for label, _ in tokenized],
        "positions": n_positions,
        "threads": threads,
        "results": rows,
    }
    out = Path(args.out) if args.out else RESULTS_DIR / "quant-standin.json"
    write_json(out, summary)
    print(format_table(summary))
    log(f"[quant] wrote {out}")
    return 0


def format_table(summary: dict[str, Any]) -> str:
    lines = ["| quant | size MiB | KL mean (nats) | KL p99 | top-1 agreement | weight rel. RMS error | weights by type | decode tok/s |",
             "|---|---:|---:|---:|---:|---:|---|---:|"]
    for quant, r in summary["results"].items():
        types = ", ".join(f"{k} {100 * v:.0f}%" for k, v in r.get("tensor_types", {}).items() if v >= 0.005)
        err = r.get("weight_rel_rms_err")
        lines.append(f"| {quant} | {r['size_mib']} | {r['kl_mean']:.4f} | {r['kl_p99']:.4f} | "
                     f"{100 * r['top1_agreement']:.1f}% | {'' if err is None else f'{100 * err:.2f}%'} | {types} | "
                     f"{r['decode_tok_s']} |")
    return "\n".join(lines)
