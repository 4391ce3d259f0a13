"""Speed and memory on the Llama-3.2-1B shape: `ondevice bench speed`.

Measured on random-weight GGUFs with the exact Llama-3.2-1B shape and the real Llama 3 tokenizer
(``ondevice_bench.fixtures.synthetic.ensure_random_llama_1b_gguf``), Q4_K_M and Q8_0, each in its own process so that
peak RSS is that file's alone:

- prompt: the get_weather prompt evaluated with nothing cached (KV and snapshots cleared) by a caller
  that has run before, tok/s, against llama.cpp's own prompt evaluation after its warm-up (native.py);
  the cold figures below also pay the first use of a fresh context (weights faulted in, buffers allocated).
- load: ``ToolCaller.load`` wall time (the file is in the page cache: it was just built or read).
- cold: for each of the card's examples (``examples/*/``), a freshly loaded model answers it: prompt
  evaluation tok/s (tokens evaluated / prompt_eval_s) and the whole call's wall time, which includes
  building the grammar tokenizer on first use.
- warm: the tools prefix already evaluated (a call with the same tools answered just before), the
  wall time of the card's query; median of the repeats.
- decode: tokens per second of the decode loop, with the grammar (per sampled token, the forced
  tokens' evaluation charged to them) and without (free generation), and llama.cpp's own decode
  (``ondevice_bench.native``: a raw llama_decode loop with llama.cpp's greedy sampler) on the same file, prompt
  and thread count, interleaved repeat by repeat so that machine load affects all three alike.
- get_weather: warm wall time of the card's complete get_weather call under the grammar against
  free generation of the same number of output tokens.
- peak RSS of the process (``ru_maxrss``) before llama.cpp's native loop loads a second copy.

A random-weight model's sampled values are noise: inside a JSON string it rarely closes the string, so
the grammar's budget, not the model, may end a call (reported as ``finish_reason``/``truncated``).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

from ondevice_bench.examples import PINNED_DATE, card_examples

WARM_UP_QUERY = "Hello"


def bfcl_replay_cases(n: int, seed: int = 0) -> list[dict[str, Any]]:
    """`n` BFCL live_simple cases as replay examples: the answer is the ground truth's first allowed
    value for each argument (optional arguments left out). Empty when bfcl-eval is not installed."""
    from .errors import BfclUnavailable

    try:
        from .bfcl import sample_cases, to_query_and_history
        cases = sample_cases(["live_simple"], n, seed) if n > 0 else []
    except (ImportError, BfclUnavailable):
        return []
    found = []
    for case in cases:
        query, history = to_query_and_history(case)
        calls = []
        for call in case.ground_truth or ():
            (name, params), = call.items()
            calls.append({"name": name, "arguments": {k: v[0] for k, v in params.items() if v and v[0] != ""}})
        found.append({"name": case.id, "query": query, "history": history, "tools": case.tools, "answer": calls})
    return found


def _median(values: list[float]) -> Optional[float]:
    return round(statistics.median(values), 4) if values else None


def _ratio(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return round(a / b, 3) if a and b else None


# --------------------------------------------------------------------------------------------- worker


def replay_sampler(caller: Any, ex: dict[str, Any], answer: str) -> Any:
    """A token chooser that replays `answer` (the card's reported answer for the fine-tune).

    A random-weight model's own choices are noise (it rarely closes a string), so the timings of a call
    would not be those of a real one. This sampler pays for the usual greedy pick, then returns the next
    token of `answer` instead (when the grammar allows it): sampled and forced steps are then exactly
    those of the fine-tune producing its answer, on the real 1B shape. It reads the answer so far from
    the decode loop (`generated`).
    """
    from ondevice.engine.sampling import Sampler

    model = caller.model

    class Replay(Sampler):
        def pick(self, logits, allowed=None, generated=()):  # type: ignore[no-untyped-def]
            greedy = super().pick(logits, allowed)
            done = model.detokenize(list(generated)).decode("utf-8", errors="replace")
            if answer.startswith(done) and len(answer) > len(done):
                token = model.tokenize(answer[len(done):], special=False)[0]
                if allowed is None or allowed[token]:
                    return token
            return greedy

    return Replay()


def measure_speculation(caller: Any, cases: list[dict[str, Any]], repeats: int) -> dict[str, Any]:
    """Each case answered warm with speculation off and on, interleaved repeat by repeat (the tools and
    query evaluated just before each call, so both start from the same cache state), with the answer
    replayed: decode steps (llama_decode calls) per call, wall time (median), outputs compared."""
    from .common import log
    from .quant import answer_text

    rows = []
    settings = caller.settings
    for case in cases:
        answer = answer_text(case["answer"])
        budget = len(caller.model.tokenize(answer, special=False)) + 4 if answer else 32
        walls: dict[bool, list[float]] = {False: [], True: []}
        last: dict[bool, Any] = {}
        for _ in range(repeats):
            for spec in (False, True):
                s = settings.with_(max_tokens=budget, speculate=spec)
                caller.call(case["query"], case["tools"], case.get("history"), settings=s.with_(max_tokens=1))
                t0 = time.perf_counter()
                res = caller.call(case["query"], case["tools"], case.get("history"), settings=s,
                                  sampler=replay_sampler(caller, case, answer))
                walls[spec].append(time.perf_counter() - t0)
                last[spec] = res
        off, on = last[False].timings, last[True].timings
        rows.append({
            "case": case["name"],
            "output_tokens": off["sampled_tokens"] + off["forced_tokens"],
            "sampled_tokens": off["sampled_tokens"],
            "steps_off": off["decode_steps"],
            "steps_on": on["decode_steps"],
            "drafted_tokens": on["drafted_tokens"],
            "accepted_tokens": on["accepted_tokens"],
            "wall_off_s": _median(walls[False]),
            "wall_on_s": _median(walls[True]),
            "same_output": last[False].text == last[True].text,
            "replayed_exactly": last[True].text == answer,
        })
        r = rows[-1]
        log(f"[speed] speculation {case['name']}: steps {r['steps_off']} -> {r['steps_on']}, "
            f"wall {r['wall_off_s']} -> {r['wall_on_s']} s, same output: {r['same_output']}")

    def summary(subset: list[dict[str, Any]]) -> dict[str, Any]:
        if not subset:
            return {}
        off = sum(r["steps_off"] for r in subset)
        on = sum(r["steps_on"] for r in subset)
        wall_off = sum(r["wall_off_s"] for r in subset)
        wall_on = sum(r["wall_on_s"] for r in subset)
        return {"cases": len(subset), "steps_per_call_off": round(off / len(subset), 2),
                "steps_per_call_on": round(on / len(subset), 2), "steps_reduction": round(1 - on / off, 3) if off else None,
                "wall_off_s": round(wall_off, 4), "wall_on_s": round(wall_on, 4),
                "speedup": _ratio(wall_off, wall_on), "all_same_output": all(r["same_output"] for r in subset)}

    card = [r for r in rows if not r["case"].startswith("live_simple")]
    bfcl = [r for r in rows if r["case"].startswith("live_simple")]
    return {"card": summary(card), "bfcl_live_simple": summary(bfcl), "all": summary(rows), "cases": rows}


def measure(path: Path, *, threads: Optional[int], n_ctx: int, decode_tokens: int, repeats: int,
            limit: Optional[int], native: bool = True, bfcl_sample: int = 0, seed: int = 0) -> dict[str, Any]:
    """Everything for one GGUF, in this process."""
    from ondevice import Settings, ToolCaller
    from ondevice.formats.prompt import prepare_messages

    from .common import log, peak_rss_mib

    from .quant import answer_text

    settings = Settings(n_ctx=n_ctx, n_threads=threads, max_tokens=512, constrained=True, date_string=PINNED_DATE)
    examples = card_examples(limit)
    # A random-weight model's output length is arbitrary: each call gets the budget the card's own answer
    # needs (its token count + 4), so latencies are those of a call of the real answer's length.
    probe = ToolCaller.load(str(path), settings)
    for ex in examples:
        text = answer_text(ex["answer"])
        ex["budget"] = len(probe.model.tokenize(text, special=False)) + 4 if text else 32
    probe.close()
    del probe
    out: dict[str, Any] = {"file": path.name, "size_mib": round(path.stat().st_size / 2**20, 1), "threads": settings.threads,
                           "load_avg_start": [round(x, 2) for x in os.getloadavg()]}

    # --- cold: a fresh load per example -------------------------------------------------------
    cold = []
    load_times = []
    for ex in examples:
        t0 = time.perf_counter()
        caller = ToolCaller.load(str(path), settings)
        load_times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        res = caller.call(ex["query"], ex["tools"], settings=settings.with_(max_tokens=ex["budget"]))
        wall = time.perf_counter() - t0
        t = res.timings
        evaluated = t["prompt_tokens"] - t.get("prompt_reused", 0)
        cold.append({
            "example": ex["name"],
            "prompt_tokens": t["prompt_tokens"],
            "prompt_eval_s": t["prompt_eval_s"],
            "prompt_tok_s": round(evaluated / t["prompt_eval_s"], 1) if t["prompt_eval_s"] else None,
            "wall_s": round(wall, 3),
            "sampled_tokens": t["sampled_tokens"],
            "forced_tokens": t["forced_tokens"],
            "budget": ex["budget"],
        })
        log(f"[speed] {path.name}: cold {ex['name']}: {t['prompt_tokens']} prompt tokens at "
            f"{cold[-1]['prompt_tok_s']} tok/s, call {wall:.2f}s")
        caller.close()
        del caller
    out["load_s"] = _median(load_times)
    out["cold"] = cold
    out["cold_prompt_tok_s"] = _median([c["prompt_tok_s"] for c in cold if c["prompt_tok_s"]])

    # --- one caller for the warm measurements -------------------------------------------------
    caller = ToolCaller.load(str(path), settings)
    warm = []
    for ex in examples:
        walls, prompt_s = [], []
        budget = settings.with_(max_tokens=ex["budget"])
        for _ in range(repeats):
            # the tools prefix is now evaluated and cached
            caller.call(WARM_UP_QUERY, ex["tools"], settings=settings.with_(max_tokens=1))
            replay = replay_sampler(caller, ex, answer_text(ex["answer"]))
            t0 = time.perf_counter()
            res = caller.call(ex["query"], ex["tools"], settings=budget, sampler=replay)
            walls.append(time.perf_counter() - t0)
            prompt_s.append(res.timings["prompt_eval_s"])
        warm.append({
            "example": ex["name"],
            "wall_s": _median(walls),
            "prompt_eval_s": _median(prompt_s),
            "prompt_reused": res.timings["prompt_reused"],
            "prompt_tokens": res.timings["prompt_tokens"],
            "output_tokens": res.timings["sampled_tokens"] + res.timings["forced_tokens"],
            "sampled_tokens": res.timings["sampled_tokens"],
            "forced_tokens": res.timings["forced_tokens"],
            "text": res.text[:300],
            "budget": ex["budget"],
        })
        log(f"[speed] {path.name}: warm {ex['name']}: {warm[-1]['wall_s']:.3f}s "
            f"({res.timings['prompt_reused']}/{res.timings['prompt_tokens']} prompt tokens cached)")
    out["warm"] = warm

    # --- prompt evaluation with nothing cached, on a context that has run before (as the native figure) ---
    ex = examples[0]
    rates = []
    for _ in range(repeats):
        caller.model.truncate(0)
        caller.prefix_cache.clear()
        res = caller.call(ex["query"], ex["tools"], settings=settings.with_(max_tokens=1))
        rates.append(res.timings["prompt_tokens"] / res.timings["prompt_eval_s"])
    out["uncached_prompt_tok_s"] = _median(rates)
    log(f"[speed] {path.name}: prompt evaluation, nothing cached, warm context: {out['uncached_prompt_tok_s']} tok/s")

    # --- speculation off/on: decode steps and warm wall time, card examples + BFCL live_simple ---
    out["speculation"] = measure_speculation(caller, examples + bfcl_replay_cases(bfcl_sample, seed), repeats)
    out["batch_cost"] = measure_batch_cost(caller.model, repeats)

    # --- get_weather: complete call under the grammar vs free generation of as many tokens -----
    ex = examples[0]
    g_walls, f_walls, g_info = [], [], {}
    gw_budget = settings.with_(max_tokens=ex["budget"])
    for _ in range(repeats):
        caller.call(ex["query"], ex["tools"], settings=settings.with_(max_tokens=1))  # both equally warm
        answer = answer_text(ex["answer"])
        t0 = time.perf_counter()
        res = caller.call(ex["query"], ex["tools"], settings=gw_budget, sampler=replay_sampler(caller, ex, answer))
        g_walls.append(time.perf_counter() - t0)
        n_out = res.timings["sampled_tokens"] + res.timings["forced_tokens"]
        g_info = {"output_tokens": n_out, "sampled_tokens": res.timings["sampled_tokens"],
                  "forced_tokens": res.timings["forced_tokens"], "finish_reason": res.finish_reason,
                  "truncated": res.truncated, "text": res.text[:300]}
        t0 = time.perf_counter()
        free = caller.call(ex["query"], ex["tools"], settings=settings.with_(constrained=False, max_tokens=n_out),
                           sampler=replay_sampler(caller, ex, answer))
        f_walls.append(time.perf_counter() - t0)
        g_info["free_tokens"] = free.timings["sampled_tokens"]
    out["get_weather"] = dict(
        g_info,
        example=ex["name"],
        grammar_wall_s=_median(g_walls),
        free_wall_s=_median(f_walls),
        ratio=_ratio(_median(g_walls), _median(f_walls)),
    )
    log(f"[speed] {path.name}: get_weather call {out['get_weather']['grammar_wall_s']}s vs free "
        f"{out['get_weather']['free_wall_s']}s for {g_info['output_tokens']} tokens")

    # --- decode speed: grammar, free, native, interleaved ------------------------------------
    # The tool-call grammar allows the empty list, and a random-weight model may take that exit at once.
    # So all three decodes start after the same opening of a get_weather call, appended to the prompt
    # (and consumed by the grammar): ``<tool_call>[\n{"name": "get_weather", "arguments": {"location": "``.
    # From there the engine's own decode loop (ondevice's session loop, which `call` runs: Engine.decode_prompt) samples the
    # argument value token by token under the grammar's mask, until the budget ends it.
    from llguidance import LLMatcher

    from ondevice.engine.sampling import Sampler

    ex = examples[0]
    call_name = ex["tools"][0]["name"]
    first_arg = next(iter(ex["tools"][0]["parameters"]["properties"]))
    opening = '<tool_call>[\n{"name": "%s", "arguments": {"%s": "' % (call_name, first_arg)
    prompt_text = caller.render(prepare_messages(ex["query"], ex["tools"]))
    prompt_tokens = caller.model.tokenize(prompt_text)
    opening_tokens = caller.model.tokenize(opening, special=False)
    _, grammar = caller.grammar(ex["tools"], settings)  # the exact grammar `call` uses for these tools
    lltok = caller.lltokenizer()

    def engine_decode(constrained: bool) -> Any:
        matcher = None
        if constrained:
            matcher = LLMatcher(lltok, grammar, log_level=0)
            if not matcher.consume_tokens(opening_tokens):
                raise RuntimeError(f"the grammar refused the opening {opening!r}: {matcher.get_error()}")
        return caller.engine.decode_prompt(prompt_tokens + opening_tokens, matcher, Sampler(0.0, 1.0, 0), decode_tokens)

    g_rates, g_rates_out, f_rates, runs = [], [], [], []
    native_runs: list[dict[str, Any]] = []
    rss_before_native = None
    engine_decode(True)  # warm-up
    for rep in range(repeats):
        gen = engine_decode(True)
        if gen.sampled:
            g_rates.append(gen.sampled / gen.seconds)
            g_rates_out.append((gen.sampled + gen.forced) / gen.seconds)
        gen_f = engine_decode(False)
        if gen_f.sampled:
            f_rates.append(gen_f.sampled / gen_f.seconds)
        runs.append({"grammar": {"sampled": gen.sampled, "forced": gen.forced, "seconds": round(gen.seconds, 4),
                                 "finish": gen.finish_reason, "text": gen.text[:120]},
                     "free": {"sampled": gen_f.sampled, "seconds": round(gen_f.seconds, 4), "finish": gen_f.finish_reason}})
        if native:
            if rss_before_native is None:
                rss_before_native = peak_rss_mib()
            from .native import native_decode

            native_runs.append(native_decode(path, prompt_tokens + opening_tokens, decode_tokens, n_ctx=n_ctx,
                                             n_batch=settings.n_batch, threads=settings.threads, repeats=1))
        log(f"[speed] {path.name}: decode repeat {rep + 1}/{repeats}: grammar "
            f"{g_rates[-1] if g_rates else float('nan'):.2f} tok/s ({gen.sampled} sampled, {gen.forced} forced), "
            f"free {f_rates[-1] if f_rates else float('nan'):.2f} tok/s"
            + (f", native {native_runs[-1]['decode_tok_s']:.2f} tok/s" if native_runs else ""))
    caller.close()
    out["decode"] = {
        "prompt_tokens": len(prompt_tokens),
        "budget_tokens": decode_tokens,
        "opening": opening,
        "grammar_tok_s": _median(g_rates),
        "grammar_output_tok_s": _median(g_rates_out),
        "free_tok_s": _median(f_rates),
        "native_tok_s": _median([r["decode_tok_s"] for r in native_runs]),
        "native_llama_perf_tok_s": _median([r["llama_perf_eval_tok_s"] for r in native_runs if r["llama_perf_eval_tok_s"]]),
        "native_prompt_tok_s": _median([r["prompt_tok_s"] for r in native_runs]),
        "native_method": native_runs[0]["method"] if native_runs else None,
        "runs": runs,
    }
    d = out["decode"]
    d["grammar_vs_free"] = _ratio(d["grammar_tok_s"], d["free_tok_s"])
    d["grammar_vs_native"] = _ratio(d["grammar_tok_s"], d["native_tok_s"])
    d["free_vs_native"] = _ratio(d["free_tok_s"], d["native_tok_s"])
    d["prompt_vs_native"] = _ratio(out.get("uncached_prompt_tok_s"), d["native_prompt_tok_s"])
    out["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    out["peak_rss_mib"] = round(rss_before_native if rss_before_native is not None else peak_rss_mib(), 1)
    return out


# --------------------------------------------------------------------------------------------- parent


def _targets(args: Any) -> list[tuple[str, Path]]:
    from .common import log

    if args.model:
        from ondevice.models.catalog import resolve

        resolved = resolve(args.model)
        return [(resolved.alias or resolved.path.stem, resolved.path)]
    from ondevice_bench.fixtures.synthetic import ensure_random_llama_1b_gguf

    targets = []
    for quant in [q.strip().upper() for q in args.quants.split(",") if q.strip()]:
        log(f"[speed] random-weight Llama-3.2-1B-shape GGUF, {quant} (built once, then cached)...")
        t0 = time.perf_counter()
        path = ensure_random_llama_1b_gguf(quant)
        log(f"[speed] {path} ({time.perf_counter() - t0:.0f}s)")
        targets.append((quant, path))
    return targets


def measure_batch_cost(model: Any, repeats: int, sizes: tuple[int, ...] = (1, 2, 4, 8)) -> dict[str, Any]:
    """The time of one llama_decode of k tokens with a row of logits each (what a speculative draft
    of k - 1 tokens, or k batched requests, cost), relative to one token: what speculation and
    batching can gain on this machine. 1.0 would be a memory-bound machine (k tokens for the price of
    one); k a compute-bound one (nothing to gain)."""
    from .common import log

    model.truncate(0)
    model.eval(list(range(1000, 1300)))  # a realistic context: a tools prefix of 300 tokens
    base = len(model.tokens)
    times: dict[int, list[float]] = {k: [] for k in sizes}
    for _ in range(max(3, repeats)):
        for k in sizes:
            for _ in range(4):
                t0 = time.perf_counter()
                model.eval(list(range(2000, 2000 + k)), n_logits=k)
                times[k].append(time.perf_counter() - t0)
                model.truncate(base)
    one = _median(times[sizes[0]])
    result = {"context_tokens": base, "step_s": {str(k): round(_median(v), 4) for k, v in times.items()},
              "relative": {str(k): _ratio(_median(v), one) for k, v in times.items()}}
    log(f"[speed] llama_decode of k tokens relative to 1: {result['relative']}")
    model.truncate(0)
    return result


def one_shot_cli(path: Path, repeats: int, threads: Optional[int]) -> dict[str, Any]:
    """`ondevice call` as a user runs it, a new process each time, on the card's get_weather example:
    the defaults before issue 12 (--repack, --no-prefix-cache, a fresh cache directory: nothing cached)
    against today's defaults in a cache directory a first call has filled; interleaved.

    Both answer with a budget of one token. On random weights greedy decoding follows numeric noise,
    so the two configurations write different answers (2 steps in one, the whole 512-token budget in
    the other): a wall time with the answer in it would compare answers, not start-up. One token
    keeps all the rest (imports, load, grammar tokenizer, prompt, first step) equal, and the decode of
    a real answer is added back from the per-step time each configuration measured.
    """
    import tempfile

    from ondevice.paths import examples_dir

    from .common import log

    ex = card_examples(1)[0]
    answer_steps = 15  # sampled steps of a get_weather answer (the speculation replay above: 12 to 17)
    cmd = [sys.executable, "-m", "ondevice", "call", ex["query"], "--tools", str(examples_dir() / ex["name"] / "tools.json"),
           "--model", str(path), "--date-string", PINNED_DATE, "--json"]
    if threads:
        cmd += ["--threads", str(threads)]
    before = ["--repack", "--no-prefix-cache"]

    def once(home: str, *extra: str) -> tuple[float, dict[str, Any]]:
        env = dict(os.environ, ONDEVICE_HOME=home)
        t0 = time.perf_counter()
        proc = subprocess.run(cmd + list(extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"ondevice call failed (exit {proc.returncode}): {proc.stderr.strip()[-400:]}")
        return wall, json.loads(proc.stdout)["timings"]

    def per_step(timings: dict[str, Any]) -> float:
        return timings["decode_s"] / max(1, timings["decode_steps"])

    with tempfile.TemporaryDirectory(prefix="ondevice-oneshot-") as tmp:
        warm_home = os.path.join(tmp, "warm")
        once(warm_home)  # fills the prefix cache and the grammar tokenizer's bytes
        # the per-step decode time of each configuration: 24 tokens of free text, which random weights
        # always run to the budget (the grammar's own cost per step is measured above: grammar/free)
        steps = ["--no-grammar", "--max-tokens", "24"]
        step_before = per_step(once(os.path.join(tmp, "steps"), *before, *steps)[1])
        step_now = per_step(once(warm_home, *steps)[1])
        cold, warm, reused = [], [], []
        for i in range(repeats):
            wall, _ = once(os.path.join(tmp, f"cold{i}"), *before, "--max-tokens", "1")
            cold.append(wall)
            wall, t = once(warm_home, "--max-tokens", "1")
            warm.append(wall)
            reused.append(t["prompt_reused"])
    cold_s, warm_s = _median(cold), _median(warm)
    cold_answer, warm_answer = cold_s + answer_steps * step_before, warm_s + answer_steps * step_now
    result = {"example": ex["name"], "uncached_wall_s": cold_s, "cached_wall_s": warm_s,
              "ratio_first_token": _ratio(warm_s, cold_s),
              "decode_step_s_before": round(step_before, 4), "decode_step_s_now": round(step_now, 4),
              "answer_steps": answer_steps, "uncached_with_answer_s": round(cold_answer, 4),
              "cached_with_answer_s": round(warm_answer, 4), "ratio": _ratio(warm_answer, cold_answer),
              "cached_prompt_reused": reused[-1]}
    log(f"[speed] one-shot CLI to the first token: {cold_s}s before (repack, nothing cached), {warm_s}s now "
        f"({result['ratio_first_token']}); with a {answer_steps}-step answer {result['ratio']}")
    return result


def run(args: Any) -> int:
    from . import RESULTS_DIR
    from .common import command_line, git_commit, log, machine_info, utc_now, write_json

    if args.worker:
        params = json.loads(args.worker)
        result = measure(Path(params["path"]), threads=params["threads"], n_ctx=params["n_ctx"],
                         decode_tokens=params["decode_tokens"], repeats=params["repeats"], limit=params["limit"],
                         native=params.get("native", True), bfcl_sample=params.get("bfcl_sample", 0),
                         seed=params.get("seed", 0))
        print(json.dumps(result))
        return 0

    from .placement import MODES, format_placements, measure_placements

    modes = tuple(m.strip() for m in args.placements.split(",") if m.strip())
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        raise SystemExit(f"ondevice bench speed: unknown placements {unknown}; expected some of {list(MODES)}")
    targets = _targets(args)
    results = {}
    for label, path in targets:
        placement = None
        if modes:
            placement = measure_placements(path, threads=args.threads, n_ctx=min(args.n_ctx, 2048),
                                           decode_tokens=args.decode_tokens, repeats=args.repeats, modes=modes)
            log(format_placements(label, placement))
        if args.only_placements:
            results[label] = {"file": path.name, "placement": placement}
            continue
        params = {"path": str(path), "threads": args.threads, "n_ctx": args.n_ctx,
                  "decode_tokens": args.decode_tokens, "repeats": args.repeats, "limit": args.limit,
                  "bfcl_sample": args.bfcl_sample, "native": not args.no_native, "seed": args.seed}
        log(f"[speed] measuring {label} ({path.name}) in a fresh process...")
        proc = subprocess.run(
            [sys.executable, "-m", "ondevice", "bench", "speed", "--worker", json.dumps(params)],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ),
        )
        if proc.returncode != 0:
            raise RuntimeError(f"the speed worker for {path.name} failed (exit {proc.returncode})")
        results[label] = json.loads(proc.stdout.strip().splitlines()[-1])
        results[label]["placement"] = placement
        if not args.no_one_shot:
            results[label]["one_shot_cli"] = one_shot_cli(path, args.repeats, args.threads)

    summary = {
        "benchmark": "speed",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": "random-weight Llama-3.2-1B shape, Llama 3 tokenizer" if not args.model else args.model,
        "settings": {"n_ctx": args.n_ctx, "threads": args.threads, "decode_tokens": args.decode_tokens,
                     "repeats": args.repeats, "examples_limit": args.limit, "date_string": PINNED_DATE,
                     "bfcl_live_simple_sample": args.bfcl_sample},
        "native_method": "raw llama_decode loop with llama.cpp's greedy sampler (bench/native.py); "
                         "llama-bench is not shipped in the llama-cpp-python wheel",
        "results": results,
    }
    name = "speed-1b" if not args.model else f"speed-{targets[0][0]}"
    if args.only_placements:
        name += "-placement"
    out = Path(args.out) if args.out else RESULTS_DIR / f"{name}.json"
    write_json(out, summary)
    if not args.only_placements:
        print(format_table(summary))
    for label, r in results.items():
        if r.get("placement"):
            print(format_placements(label, r["placement"]))
    log(f"[speed] wrote {out}")
    return 0


def format_table(summary: dict[str, Any]) -> str:
    lines = [
        "| quant | size MiB | load s | cold prompt tok/s | warm get_weather s | decode tok/s grammar | free | native llama.cpp "
        "| grammar/native | grammar/free | get_weather grammar/free wall | prompt/native | one-shot CLI cached/uncached | peak RSS MiB "
        "| steps/call spec off → on (card) | (BFCL live_simple) | warm speedup spec on (card) | (BFCL) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for label, r in summary["results"].items():
        d = r["decode"]
        warm = r["warm"][0]["wall_s"] if r.get("warm") else None
        sp = r.get("speculation") or {}
        lines.append(
            f"| {label} | {r['size_mib']} | {r['load_s']:.2f} | {r['cold_prompt_tok_s']} | {warm:.3f} | "
            f"{d['grammar_tok_s']:.1f} | {d['free_tok_s']:.1f} | {d['native_tok_s'] or float('nan'):.1f} | "
            f"{d['grammar_vs_native']} | {d['grammar_vs_free']} | {r['get_weather']['ratio']} | {d.get('prompt_vs_native')} | {(r.get('one_shot_cli') or {}).get('ratio')} | {r['peak_rss_mib']} | "
            f"{_steps(sp.get('card'))} | {_steps(sp.get('bfcl_live_simple'))} | "
            f"{(sp.get('card') or {}).get('speedup')} | {(sp.get('bfcl_live_simple') or {}).get('speedup')} |"
        )
    return "\n".join(lines)


def _steps(summary: Optional[dict[str, Any]]) -> str:
    if not summary:
        return "-"
    return f"{summary['steps_per_call_off']} → {summary['steps_per_call_on']}"
