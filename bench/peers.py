"""ondevice against its peers on the same GGUF, the same BFCL cases and the same threads, in one run.

Engines (all real llama-cpp-python, greedy):

- ``ondevice``: the runtime, in the model's own tool format (manifest, else its chat template), grammar on.
- ``llama-cpp-chatml``: llama-cpp-python's own tool calling, ``Llama(chat_format="chatml-function-calling")``
  with ``create_chat_completion(tools=..., tool_choice="auto")``; its calls are ``message.tool_calls``.
- ``template-lenient``: the model's own chat template (the GGUF's ``tokenizer.chat_template``, through
  llama-cpp-python's Jinja2 formatter) with the tools, free generation, and a lenient parser, as
  llama-server ``--jinja`` and Ollama do: every ``<tool_call>`` block, else a bare JSON call or list.

The peers get the tools in OpenAI's layout with JSON Schema parameters (BFCL's "dict" dialect
rewritten, as ondevice reads it); ondevice gets them as BFCL gives them. Each case runs on every
engine back to back, round-robin over categories, so an interrupted run stays paired; raw answers go
to bench/results/raw/ and ``--resume`` continues them.

Per engine and category: BFCL accuracy (its AST checker, as ``bench bfcl``) with 95% Wilson
intervals, validity, false refusals, extra calls (beyond the ground truth's count; any call on
irrelevance), identical calls repeated, latency p50/p95; then ondevice vs each peer, paired (exact
McNemar) and as latency ratios.
"""

from __future__ import annotations

from ondevice import wait_policy  # noqa: F401  (before llama.cpp loads: see ondevice/wait_policy.py)

import json
import re
import time
from pathlib import Path
from typing import Any, Optional

from . import bfcl as B

ENGINES = ("ondevice", "llama-cpp-chatml", "template-lenient")
_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*(?:</tool_call>|$)", re.S)
_FENCE = re.compile(r"^```(?:json)?\s*(.*?)\s*```$", re.S)


# ------------------------------------------------------------------------------------------ parsing

def _as_call(item: Any) -> Optional[dict[str, Any]]:
    """{"name", "arguments"} from one parsed item (``arguments`` or ``parameters``, an object or its JSON)."""
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        return None
    args = item.get("arguments", item.get("parameters", {}))
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return None
    return {"name": item["name"], "arguments": args} if isinstance(args, dict) else None


def _calls_of(value: Any) -> Optional[list[dict[str, Any]]]:
    items = value if isinstance(value, list) else [value]
    calls = [_as_call(i) for i in items]
    return None if any(c is None for c in calls) else calls  # type: ignore[return-value]


def lenient_calls(text: str) -> Optional[list[dict[str, Any]]]:
    """Calls from free text, leniently: each ``<tool_call>`` block (an object or a list; the last may be
    unclosed), else the whole answer (or its one code fence) as a JSON call or list of calls; any other
    text is an answer without a call ([]). None: a tag whose content is not a call (a broken answer)."""
    blocks = _BLOCK.findall(text)
    if blocks:
        calls: list[dict[str, Any]] = []
        for block in blocks:
            try:
                found = _calls_of(json.loads(block))
            except ValueError:
                return None
            if found is None:
                return None
            calls.extend(found)
        return calls
    body = text.strip()
    fence = _FENCE.match(body)
    if fence:
        body = fence.group(1)
    if body[:1] in "{[" and body:
        try:
            found = _calls_of(json.loads(body))
        except ValueError:
            return []
        return found if found is not None else []
    return []


def openai_tools(case: B.Case) -> list[dict[str, Any]]:
    """The case's tools as OpenAI tools with JSON Schema parameters (what a client sends a server)."""
    from ondevice.schema.tools import normalize_tools

    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                              "parameters": t.parameters}} for t in normalize_tools(case.tools)]


# ------------------------------------------------------------------------------------------ engines

class OndeviceEngine:
    name = "ondevice"

    def __init__(self, model: str, settings: Any):
        from ondevice import ToolCaller

        self.caller = ToolCaller.load(model, settings)
        self.settings = settings
        self.detail = {"tool_format": self.caller.default_tool_format, "no_call": self.caller.default_no_call,
                       "format_reason": self.caller.format_choice.reason}

    def answer(self, case: B.Case) -> tuple[Optional[list[dict[str, Any]]], str]:
        query, history = B.to_query_and_history(case, self.caller.tool_format(self.settings))
        res = self.caller.call(query, case.tools, history=history, settings=self.settings)
        return res.calls_as_dicts(), res.text

    def close(self) -> None:
        self.caller.close()


class TokenBudgetExceeded(RuntimeError):
    """A peer's answer ran past the token budget every engine gets."""


class LlamaCppEngine:
    """llama-cpp-python's create_chat_completion with a chat format: its own tool calling or the GGUF's template."""

    def __init__(self, name: str, path: Path, n_ctx: int, threads: Optional[int], seed: int, max_tokens: int):
        import llama_cpp

        self.name = name
        chat_format = "chatml-function-calling" if name == "llama-cpp-chatml" else "chat_template.default"
        kwargs: dict[str, Any] = {"n_ctx": n_ctx, "seed": seed, "verbose": False, "chat_format": chat_format}
        if threads:
            kwargs |= {"n_threads": threads, "n_threads_batch": threads}
        self.llama = llama_cpp.Llama(str(path), **kwargs)
        if name == "template-lenient" and chat_format not in self.llama._chat_handlers:
            raise B.BfclUnavailable(f"{path.name} carries no chat template: the template-lenient peer needs one")
        self.max_tokens = max_tokens
        self.detail = {"chat_format": chat_format, "llama_cpp_python": llama_cpp.__version__}
        if name == "llama-cpp-chatml":
            self._bound_sub_completions()

    def _bound_sub_completions(self) -> None:
        """chatml-function-calling runs several completions per answer, each with max_tokens=None (up to
        the context: one BFCL case looped 8k tokens, 519 s); the case's budget is shared between them,
        as ondevice's max_tokens bounds its whole answer. Past it, the answer is over budget (an error)."""
        original = self.llama.create_completion
        self.used = 0

        def bounded(*args: Any, **kwargs: Any) -> Any:
            left = self.max_tokens - self.used
            if left <= 0:
                raise TokenBudgetExceeded(f"over the {self.max_tokens}-token budget of one answer")
            asked = kwargs.get("max_tokens")
            kwargs["max_tokens"] = left if asked is None or asked <= 0 else min(asked, left)
            out = original(*args, **kwargs)
            self.used += out["usage"]["completion_tokens"]
            return out

        self.llama.create_completion = bounded  # type: ignore[method-assign]

    def answer(self, case: B.Case) -> tuple[Optional[list[dict[str, Any]]], str]:
        kwargs: dict[str, Any] = {"messages": [dict(m) for m in case.messages], "tools": openai_tools(case),
                                  "temperature": 0.0, "top_k": 1, "max_tokens": self.max_tokens, "seed": 0}
        if self.name == "llama-cpp-chatml":
            kwargs["tool_choice"] = "auto"
            self.used = 0
        out = self.llama.create_chat_completion(**kwargs)
        message = out["choices"][0]["message"]
        text = message.get("content") or ""
        if self.name == "template-lenient":
            return lenient_calls(text), text
        raw = message.get("tool_calls") or []
        calls = [_as_call({"name": c["function"]["name"], "arguments": c["function"].get("arguments") or "{}"})
                 for c in raw]
        if any(c is None for c in calls):
            return None, text or json.dumps(raw)
        return calls, text or json.dumps([c["function"] for c in raw])  # type: ignore[index]

    def close(self) -> None:
        self.llama.close()


def make_engine(name: str, model: str, path: Path, settings: Any, args: Any) -> Any:
    if name == "ondevice":
        return OndeviceEngine(model, settings)
    if name in ENGINES:
        return LlamaCppEngine(name, path, args.n_ctx, args.threads, args.seed, args.max_tokens)
    raise SystemExit(f"ondevice bench: unknown engine {name!r}: expected one of {', '.join(ENGINES)}")


def engine_names(spec: str) -> list[str]:
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in ENGINES]
    if unknown or not names:
        raise SystemExit(f"ondevice bench: --engines expects some of {','.join(ENGINES)}, got {spec!r}")
    return names


# ------------------------------------------------------------------------------------------ scoring

def run_case(engine: Any, case: B.Case) -> B.CaseResult:
    """One case on one engine, scored by BFCL's checker; a runtime error is wrong and invalid."""
    start = time.perf_counter()
    try:
        calls, text = engine.answer(case)
    except Exception as exc:  # a peer's grammar or template failing on a schema is that peer's answer
        result = B.score(case, engine.name, None, "", wall_s=round(time.perf_counter() - start, 3))
        result.exception = f"{type(exc).__name__}: {str(exc)[:300]}"
        over = isinstance(exc, TokenBudgetExceeded)  # an answer that ran long, not a broken adapter
        result.correct, result.error_type = False, "over_token_budget" if over else "runtime_error"
        return result
    wall = round(time.perf_counter() - start, 3)
    return B.score(case, engine.name, calls, text, wall_s=wall)


def extra_calls(result: B.CaseResult, case: B.Case) -> int:
    """Calls beyond what was due: any on irrelevance, else beyond the ground truth's count."""
    made = len(result.calls or [])
    due = 0 if B.is_irrelevance(case.category) else len(case.ground_truth or [])
    return max(0, made - due)


def repeated_calls(result: B.CaseResult) -> int:
    seen = [json.dumps(c, sort_keys=True) for c in result.calls or []]
    return len(seen) - len(set(seen))


def percentile(values: list[float], q: float) -> Optional[float]:
    """The q-quantile (0..1) by linear interpolation between order statistics."""
    if not values:
        return None
    xs = sorted(values)
    pos = q * (len(xs) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(xs) - 1)
    return round(xs[lo] + (xs[hi] - xs[lo]) * (pos - lo), 3)


def engine_summary(rows: list[B.CaseResult], cases: dict[str, B.Case], categories: list[str]) -> dict[str, Any]:
    summary = B.summarize(rows, categories)
    if not rows:
        return summary
    walls = [r.wall_s for r in rows]
    summary["overall"] |= {
        "extra_calls": sum(extra_calls(r, cases[r.id]) for r in rows),
        "cases_with_extra_calls": sum(1 for r in rows if extra_calls(r, cases[r.id])),
        "repeated_calls": sum(repeated_calls(r) for r in rows),
        "runtime_errors": sum(1 for r in rows if r.exception and r.error_type == "runtime_error"),
        "over_token_budget": sum(1 for r in rows if r.error_type == "over_token_budget"),
        "latency_p50_s": percentile(walls, 0.5),
        "latency_p95_s": percentile(walls, 0.95),
        "total_s": round(sum(walls), 1),
    }
    return summary


def compare(done: dict[str, dict[str, B.CaseResult]], engines: list[str], categories: list[str]) -> dict[str, Any]:
    """ondevice (the first engine) vs each other engine on the same cases: McNemar per category and
    overall, and the ratio of latency p50 / p95 (peer / first: above 1, the first is faster)."""
    first = engines[0]
    out = {}
    for peer in engines[1:]:
        a = [r.wall_s for r in done[first].values()]
        b = [r.wall_s for r in done[peer].values()]
        p50a, p50b, p95a, p95b = percentile(a, .5), percentile(b, .5), percentile(a, .95), percentile(b, .95)
        out[peer] = {"paired": B.paired(done[first], done[peer], categories),
                     "latency_p50_ratio": round(p50b / p50a, 2) if p50a and p50b else None,
                     "latency_p95_ratio": round(p95b / p95a, 2) if p95a and p95b else None}
    return out


def estimate(rows_by_engine: dict[str, list[B.CaseResult]], per_category: int) -> dict[str, Any]:
    """How long a run would take at `per_category` cases a category and on the full set, from this
    run's mean seconds per case of each category (all engines together)."""
    by_cat: dict[str, list[float]] = {}
    for rows in rows_by_engine.values():
        for r in rows:
            by_cat.setdefault(r.category, []).append(r.wall_s)
    engines = max(1, len(rows_by_engine))
    mean = {c: engines * sum(v) / len(v) for c, v in by_cat.items()}  # seconds a case on every engine
    sample = sum(m * min(per_category, B.EXPECTED_COUNTS[c]) for c, m in mean.items())
    full = sum(m * B.EXPECTED_COUNTS[c] for c, m in mean.items())
    return {"per_category": per_category, "sample_hours": round(sample / 3600, 2), "full_set_hours": round(full / 3600, 1),
            "seconds_per_case_all_engines": {c: round(m, 2) for c, m in mean.items()}}


# ------------------------------------------------------------------------------------------ command

def run(args: Any) -> int:
    """`ondevice bench peers` (and `bench bfcl --engine PEER`): every engine on the same cases, one table."""
    from ondevice import Settings
    from ondevice_bench.examples import PINNED_DATE
    from ondevice.models.catalog import resolve

    from . import RAW_DIR, RESULTS_DIR
    from .common import Progress, command_line, file_mib, git_commit, log, machine_info, utc_now, version_of, write_json

    engines = engine_names(args.engines)
    categories = B.parse_categories(args.categories)
    limit = None if args.limit is None or args.limit <= 0 else args.limit
    B.load_checker()  # before any model: fail early if bfcl-eval is missing
    cases = B.sample_cases(categories, limit, args.seed)
    by_id = {c.id: c for c in cases}
    resolved = resolve(args.model)
    alias = resolved.alias or Path(resolved.path).stem
    name = B.results_name(alias, limit, args.seed, categories).replace("bfcl-", "peers-", 1)
    out = Path(args.out) if args.out else RESULTS_DIR / f"{name}.json"
    raw_dir = RAW_DIR if not args.out else out.parent / "raw"
    raw_paths = {e: raw_dir / f"{out.stem}.{e}.jsonl" for e in engines}
    done: dict[str, dict[str, B.CaseResult]] = {}
    for e in engines:
        if not args.resume and raw_paths[e].exists():
            raw_paths[e].unlink()
        done[e] = {r.id: r for r in B.read_raw(raw_paths[e]) if r.id in by_id}

    settings = Settings(n_ctx=args.n_ctx, n_threads=args.threads, seed=args.seed, temperature=0.0,
                        max_tokens=args.max_tokens, constrained=True, date_string=PINNED_DATE)
    log(f"[peers] {len(cases)} cases x {len(engines)} engines ({', '.join(engines)}) on {resolved.path.name}")
    loaded, load_s = {}, {}
    for e in engines:
        t0 = time.perf_counter()
        loaded[e] = make_engine(e, args.model, resolved.path, settings, args)
        load_s[e] = round(time.perf_counter() - t0, 2)
    todo = [(c, e) for c in B.interleave_categories(cases) for e in engines if c.id not in done[e]]
    progress = Progress("peers", len(todo), every_s=args.progress_every)
    budget_s = None if args.time_budget_min is None else 60.0 * args.time_budget_min
    started = time.perf_counter()
    try:
        for case, e in todo:
            if budget_s is not None and time.perf_counter() - started >= budget_s and e == engines[0]:
                log(f"[peers] time budget of {args.time_budget_min} min reached: continue with --resume")
                break
            result = run_case(loaded[e], case)
            done[e][case.id] = result
            B.append_raw(raw_paths[e], result)
            progress.step(f"{case.category:<22} {e}: {'ok' if result.correct else 'wrong'} {result.wall_s:.1f}s")
    finally:
        for engine in loaded.values():
            engine.close()

    wanted = {i for i in by_id if all(i in done[e] for e in engines)}
    paired_done = {e: {i: r for i, r in done[e].items() if i in wanted} for e in engines}
    summary = {
        "benchmark": "peers",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": {"spec": args.model, "alias": alias, "file": resolved.path.name, "size_mib": file_mib(resolved.path)},
        "bfcl_eval": version_of(B.BFCL_DIST),
        "llama_cpp_python": version_of("llama_cpp_python"),
        "categories": categories,
        "limit_per_category": limit,
        "seed": args.seed,
        "threads": args.threads,
        "cases_planned": len(cases),
        "cases_done": len(wanted),
        "partial": len(wanted) < len(cases),
        "engines": {e: loaded[e].detail | {"load_s": load_s[e]} for e in engines},
        "results": {e: engine_summary(list(paired_done[e].values()), by_id, categories) for e in engines},
        "raw": {e: B.display_path(raw_paths[e]) for e in engines},
    }
    if len(engines) > 1 and wanted:
        summary["compare"] = compare(paired_done, engines, categories)
    if wanted:
        summary["estimate"] = {n: estimate({e: list(paired_done[e].values()) for e in engines}, n) for n in (20, 30)}
    write_json(out, summary)
    print(format_table(summary))
    log(f"[peers] wrote {out}")
    return 0


def format_table(summary: dict[str, Any]) -> str:
    """Markdown: one row per engine (overall), one accuracy column per category, then the paired test."""
    engines = list(summary["results"])
    cats = [c for c in summary["categories"] if c in summary["results"][engines[0]]]
    short = {c: c.replace("_python", "").replace("parallel_multiple", "par_mult") for c in cats}
    header = ("| engine | " + " | ".join(short[c] for c in cats) +
              " | overall acc [95% CI] | valid | false refusals | extra calls | repeated | p50 s | p95 s |")
    lines = [header, "|---|" + "---:|" * (len(cats) + 7)]
    for e in engines:
        s = summary["results"][e]
        o = s.get("overall", {})
        ci = o.get("accuracy_pooled_ci95") or (0, 0)
        cells = [f"{s[c]['correct']}/{s[c]['n']}" for c in cats]
        lines.append(f"| {e} | " + " | ".join(cells) +
                     f" | {100 * o.get('accuracy', 0):.1f}% [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}] | "
                     f"{100 * o.get('validity', 0):.1f}% | {o.get('false_refusals')}/{o.get('calls_due')} | "
                     f"{o.get('extra_calls')} | {o.get('repeated_calls')} | {o.get('latency_p50_s')} | "
                     f"{o.get('latency_p95_s')} |")
    for peer, c in summary.get("compare", {}).items():
        t = c["paired"].get("overall", {})
        lines.append(f"\n{engines[0]} vs {peer}: +{t.get('only_first')}/-{t.get('only_second')} cases "
                     f"(exact McNemar p={t.get('p_value')}); latency p50 ratio {c['latency_p50_ratio']}, "
                     f"p95 ratio {c['latency_p95_ratio']} ({peer} / {engines[0]})")
    for n, est in summary.get("estimate", {}).items():
        lines.append(f"estimate at {n}/category: {est['sample_hours']} h; full set: {est['full_set_hours']} h "
                     "(all engines, these threads)")
    return "\n".join(lines)
