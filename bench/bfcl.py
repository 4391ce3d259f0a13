"""BFCL accuracy with and without the grammar, on the Berkeley Function Calling Leaderboard's own data
and its own AST checker, from the pinned PyPI package ``bfcl-eval``.

The data is read from the installed package (``bfcl_eval/data``); nothing is downloaded. BFCL's AST
checker imports ``bfcl_eval.constants.model_config``, which imports every provider SDK (OpenAI,
Anthropic, Mistral, ...). The checker uses it only to look up, by model name, whether dotted tool
names were rewritten with underscores; ``load_checker`` puts a stand-in module in place for that one
import (ondevice passes dotted names through unchanged), so no provider SDK is needed.

Two numbers per category and mode (grammar / no grammar), on the same model and prompts:

- accuracy: BFCL's own verdict. AST categories go through ``ast_checker`` with the category's ground
  truth; the irrelevance categories count a case as correct when the output holds no call (BFCL's
  ``is_empty_output``: no parse, ``[]`` or ``[{}]``).
- validity: the share of outputs that parse as a list of tool calls, each naming one of the given
  tools, with arguments valid (``jsonschema``) against ``ondevice.schema.tools.to_json_schema`` of that
  tool's parameters. ``[]`` is a valid list of calls.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import types
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from ondevice_bench.examples import PINNED_DATE

from .errors import BfclUnavailable

BFCL_DIST = "bfcl-eval"
BFCL_VERSION = "2026.3.23"  # pinned: the counts below are this release's
DATA_PREFIX = "BFCL_v4_"

CATEGORIES = (
    "simple_python",
    "multiple",
    "parallel",
    "parallel_multiple",
    "irrelevance",
    "live_simple",
    "live_multiple",
    "live_parallel",
    "live_parallel_multiple",
    "live_irrelevance",
)
EXPECTED_COUNTS = {
    "simple_python": 400,
    "multiple": 200,
    "parallel": 200,
    "parallel_multiple": 200,
    "irrelevance": 240,
    "live_simple": 258,
    "live_multiple": 1053,
    "live_parallel": 16,
    "live_parallel_multiple": 24,
    "live_irrelevance": 884,
}
# The name under which results are checked; the checker's stand-in mapping knows it.
CHECKER_MODEL_NAME = "ondevice"


def is_irrelevance(category: str) -> bool:
    return "irrelevance" in category


# ---------------------------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Case:
    """One BFCL test case: the first turn's messages, the tools, and the ground truth (None for
    irrelevance categories, where the right answer is no call)."""

    id: str
    category: str
    messages: tuple[dict[str, str], ...]
    functions: tuple[dict[str, Any], ...]
    ground_truth: Optional[tuple[dict[str, Any], ...]]

    @property
    def tools(self) -> list[dict[str, Any]]:
        return [dict(f) for f in self.functions]


def data_dir() -> Path:
    """The installed bfcl-eval data folder; raises BfclUnavailable saying how to install it."""
    from importlib import metadata
    from importlib.util import find_spec

    try:
        version = metadata.version(BFCL_DIST)
    except metadata.PackageNotFoundError:
        raise BfclUnavailable(
            f"bfcl-eval is not installed: run `pip install --no-deps {BFCL_DIST}=={BFCL_VERSION}`"
        ) from None
    if version != BFCL_VERSION:
        raise BfclUnavailable(
            f"bfcl-eval {version} is installed, the benchmark is pinned to {BFCL_VERSION}: "
            f"run `pip install --no-deps {BFCL_DIST}=={BFCL_VERSION}`"
        )
    spec = find_spec("bfcl_eval")
    assert spec is not None and spec.submodule_search_locations
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@lru_cache(maxsize=None)
def load_category(category: str) -> tuple[Case, ...]:
    """Every case of one category, in BFCL's order, with its ground truth."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown BFCL category {category!r}: expected one of {', '.join(CATEGORIES)}")
    folder = data_dir()
    rows = _read_jsonl(folder / f"{DATA_PREFIX}{category}.json")
    truth: dict[str, Any] = {}
    if not is_irrelevance(category):
        truth = {row["id"]: row["ground_truth"] for row in _read_jsonl(folder / "possible_answer" / f"{DATA_PREFIX}{category}.json")}
    cases = []
    for row in rows:
        turns = row["question"]
        if len(turns) != 1:
            raise ValueError(f"{row['id']}: expected a single-turn question, got {len(turns)} turns")
        gt = None
        if not is_irrelevance(category):
            if row["id"] not in truth:
                raise ValueError(f"{row['id']}: no ground truth in possible_answer")
            gt = tuple(truth[row["id"]])
        cases.append(
            Case(
                id=row["id"],
                category=category,
                messages=tuple(dict(m) for m in turns[0]),
                functions=tuple(row["function"]),
                ground_truth=gt,
            )
        )
    return tuple(cases)


def parse_categories(spec: Optional[str]) -> list[str]:
    """`None`/"all" -> every category; else a comma-separated list of category names."""
    if spec is None or spec.strip() in ("", "all"):
        return list(CATEGORIES)
    names = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [n for n in names if n not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown BFCL categories {unknown}: expected some of {', '.join(CATEGORIES)}")
    return names


def sample_cases(
    categories: Iterable[str], limit: Optional[int] = None, seed: int = 0
) -> list[Case]:
    """The cases to run: every case, or `limit` per category (stratified by category), drawn with a
    generator seeded by (seed, category) so one category's draw does not depend on which others run.
    Within a category the drawn cases keep BFCL's order."""
    chosen: list[Case] = []
    for category in categories:
        cases = load_category(category)
        if limit is None or limit >= len(cases):
            chosen.extend(cases)
            continue
        if limit < 0:
            raise ValueError(f"--limit must be >= 0, got {limit}")
        rng = random.Random(f"bfcl:{seed}:{category}")
        picked = sorted(rng.sample(range(len(cases)), limit))
        chosen.extend(cases[i] for i in picked)
    return chosen


def interleave_categories(cases: list[Case]) -> list[Case]:
    """The same cases, ordered round-robin over their categories (first of each, second of each, ...)."""
    queues: dict[str, list[Case]] = {}
    for case in cases:
        queues.setdefault(case.category, []).append(case)
    out: list[Case] = []
    i = 0
    while len(out) < len(cases):
        for queue in queues.values():
            if i < len(queue):
                out.append(queue[i])
        i += 1
    return out


# ------------------------------------------------------------------------------------------- checker


class _DottedNamesUnchanged(dict):
    """Stand-in for bfcl's MODEL_CONFIG_MAPPING: every model keeps dotted tool names as they are."""

    def __missing__(self, key: str) -> Any:
        return types.SimpleNamespace(underscore_to_dot=False, model_name=key)


@dataclass(frozen=True)
class Checker:
    ast_checker: Callable[..., dict[str, Any]]
    language_python: Any
    is_empty_output: Callable[[Any], bool]
    is_function_calling_format_output: Callable[[Any], bool]


@lru_cache(maxsize=1)
def load_checker() -> Checker:
    """BFCL's AST checker and output helpers, loaded without any provider SDK."""
    data_dir()  # version check, with the install hint
    name = "bfcl_eval.constants.model_config"
    previous = sys.modules.get(name)
    stand_in = types.ModuleType(name)
    stand_in.__doc__ = "ondevice stand-in: only MODEL_CONFIG_MAPPING[...].underscore_to_dot is read"
    stand_in.MODEL_CONFIG_MAPPING = _DottedNamesUnchanged()  # type: ignore[attr-defined]
    if previous is None:
        sys.modules[name] = stand_in
    try:
        from bfcl_eval.constants.enums import Language
        from bfcl_eval.eval_checker.ast_eval import ast_checker as module
        from bfcl_eval.utils import is_empty_output, is_function_calling_format_output
    finally:
        if previous is None and sys.modules.get(name) is stand_in:
            del sys.modules[name]
    return Checker(module.ast_checker, Language.PYTHON, is_empty_output, is_function_calling_format_output)


def to_bfcl_output(calls: Optional[list[Any]]) -> Optional[list[dict[str, Any]]]:
    """Our calls in BFCL's decoded model-output format: ``[{func_name: {arg: value}}, ...]``."""
    if calls is None:
        return None
    out = []
    for call in calls:
        name = call.name if hasattr(call, "name") else call["name"]
        args = call.arguments if hasattr(call, "arguments") else call.get("arguments", {})
        out.append({name: args})
    return out


def bfcl_verdict(case: Case, calls: Optional[list[Any]]) -> tuple[bool, Optional[str], Optional[str]]:
    """BFCL's verdict on our output: (correct, error_type, first error message)."""
    checker = load_checker()
    output = to_bfcl_output(calls)
    if is_irrelevance(case.category):
        contains_call = output is not None and not checker.is_empty_output(output)
        if contains_call:
            return False, "irrelevance_error:decoder_success", "made a call where none was wanted"
        return True, None, None
    if output is None:
        return False, "ast_decoder:decoder_failed", "the output is not a list of tool calls"
    if not checker.is_function_calling_format_output(output):
        return False, "ast_decoder:decoder_wrong_output_format", "not in function-calling format"
    result = checker.ast_checker(
        list(case.functions),
        output,
        list(case.ground_truth or []),
        checker.language_python,
        case.category,
        CHECKER_MODEL_NAME,
    )
    if result.get("valid"):
        return True, None, None
    errors = result.get("error") or []
    return False, result.get("error_type"), (str(errors[0]) if errors else None)


# ------------------------------------------------------------------------------------------ validity


@lru_cache(maxsize=4096)
def _tools_of(functions_json: str) -> list[Any]:
    from ondevice.schema.tools import normalize_tools

    return normalize_tools(json.loads(functions_json))


def format_validity(case: Case, calls: Optional[list[Any]]) -> tuple[bool, Optional[str]]:
    """(valid, reason): a list of calls naming given tools with schema-valid arguments (the runtime's check)."""
    from ondevice.formats.blocks import ToolCall, validate_calls

    if calls is None:
        return False, "not a <tool_call> list"
    typed = [c if isinstance(c, ToolCall) else ToolCall(c.get("name"), c.get("arguments")) for c in calls]
    tools = _tools_of(json.dumps(case.functions, sort_keys=True))
    problems = validate_calls(typed, tools)
    # BFCL's functions are closed: an argument they do not declare is a wrong call (its AST checker
    # refuses it), although JSON Schema would let the caller's object schema accept it.
    declared = {t.name: set(t.parameters.get("properties", {})) for t in tools}
    problems += [f"call #{i} ({c.name}): unexpected argument(s) {sorted(set(c.arguments) - declared[c.name])}"
                 for i, c in enumerate(typed)
                 if c.name in declared and isinstance(c.arguments, dict) and set(c.arguments) - declared[c.name]]
    return (False, problems[0][:200]) if problems else (True, None)


# ----------------------------------------------------------------------------------------- prompting


def to_query_and_history(case: Case, tool_format: str = "card") -> tuple[str, Optional[list[dict[str, str]]]]:
    """Map a BFCL first turn onto the model card's interface (`tool_format` "card").

    A system message (live categories) is prepended to the first user message, since the card's own
    system prompt must stay as trained. Consecutive same-role messages are joined. A turn with several
    user messages becomes the card's multi-turn form: the first user message carries the tools, the
    last is the query, the ones between are history.

    "native": the system message stays a system message (the model's template writes it above the
    tools, in place of its default one) and the turns before the last are plain history.
    """
    from ondevice.formats import get_format
    from ondevice.formats.prompt import prepare_messages

    system = "\n\n".join(m["content"] for m in case.messages if m["role"] == "system" and m["content"])
    merged: list[dict[str, str]] = []
    for m in case.messages:
        if m["role"] == "system":
            continue
        role = "assistant" if m["role"] == "assistant" else "user"
        if merged and merged[-1]["role"] == role:
            merged[-1]["content"] += "\n" + m["content"]
        else:
            merged.append({"role": role, "content": m["content"]})
    if get_format(tool_format).template_layout:
        if not merged or merged[-1]["role"] != "user":
            raise ValueError(f"{case.id}: the turn does not end with a user message")
        history = ([{"role": "system", "content": system}] if system else []) + merged[:-1]
        return merged[-1]["content"], history or None
    if not merged or merged[0]["role"] != "user":
        merged.insert(0, {"role": "user", "content": ""})
    if system:
        merged[0]["content"] = (system + "\n\n" + merged[0]["content"]).strip()
    if merged[-1]["role"] != "user":
        raise ValueError(f"{case.id}: the turn does not end with a user message")
    if len(merged) == 1:
        return merged[0]["content"], None
    history = prepare_messages(merged[0]["content"], case.tools) + merged[1:-1]
    return merged[-1]["content"], history


# ---------------------------------------------------------------------------------------------- runs

MODES = {"grammar": True, "free": False}
# "grammar" uses the model's no-call default (its manifest); "grammar:list|text|threshold" forces one.
NO_CALL_VARIANTS = ("list", "text", "threshold")


def mode_names(spec: str) -> list[str]:
    """The modes of a --modes value: grammar, free, grammar:list, grammar:text, grammar:threshold, grammar:mask."""
    modes = [m.strip() for m in spec.split(",") if m.strip()]
    known = list(MODES) + [f"grammar:{v}" for v in NO_CALL_VARIANTS] + ["grammar:mask"]
    unknown = [m for m in modes if m not in known]
    if unknown or not modes:
        raise SystemExit(f"ondevice bench bfcl: --modes expects some of {','.join(known)}, got {spec!r}")
    return modes


def made_call(result: "CaseResult") -> bool:
    """Whether the answer holds a call: a non-empty parsed list, or a tool-call tag at all."""
    if result.calls:
        return True
    return result.calls is None and "<tool_call>" in (result.text or "")


@dataclass
class CaseResult:
    id: str
    category: str
    mode: str
    correct: bool
    valid: bool
    error_type: Optional[str] = None
    error: Optional[str] = None
    invalid_reason: Optional[str] = None
    text: str = ""
    calls: Optional[list[dict[str, Any]]] = None
    wall_s: float = 0.0
    prompt_tokens: Optional[int] = None
    sampled_tokens: Optional[int] = None
    forced_tokens: Optional[int] = None
    exception: Optional[str] = None
    extra: dict[str, Any] = field(default_factory=dict)


def score(case: Case, mode: str, calls: Optional[list[Any]], text: str, **timing: Any) -> CaseResult:
    correct, error_type, error = bfcl_verdict(case, calls)
    valid, reason = format_validity(case, calls)
    return CaseResult(
        id=case.id,
        category=case.category,
        mode=mode,
        correct=correct,
        valid=valid,
        error_type=error_type,
        error=error,
        invalid_reason=reason,
        text=text,
        calls=[{"name": k, "arguments": v} for d in (to_bfcl_output(calls) or []) for k, v in d.items()]
        if calls is not None
        else None,
        **timing,
    )


def run_case(caller: Any, case: Case, mode: str, settings: Any = None) -> CaseResult:
    """One case through the runtime (with `settings` for this mode); runtime errors (context
    overflow) count as wrong and invalid, with the exception recorded."""
    from ondevice.errors import OndeviceError

    query, history = to_query_and_history(case, caller.tool_format(settings))
    start = time.perf_counter()
    try:
        res = caller.call(query, case.tools, history=history, settings=settings)
    except OndeviceError as exc:
        wall = time.perf_counter() - start
        result = score(case, mode, None, "", wall_s=round(wall, 3))
        result.exception = f"{type(exc).__name__}: {str(exc)[:300]}"
        if is_irrelevance(case.category):
            # No output at all is not a refusal the model made: count it as wrong.
            result.correct = False
            result.error_type = "runtime_error"
        return result
    wall = time.perf_counter() - start
    t = res.timings or {}
    return score(
        case,
        mode,
        res.calls,
        res.text,
        wall_s=round(wall, 3),
        prompt_tokens=t.get("prompt_tokens"),
        sampled_tokens=t.get("sampled_tokens"),
        forced_tokens=t.get("forced_tokens"),
        extra={k: t[k] for k in ("prompt_reused", "prompt_eval_s", "decode_s") if k in t}
        | {"finish_reason": getattr(res, "finish_reason", None), "truncated": getattr(res, "truncated", None),
           "message": getattr(res, "message", None), "no_call_probability": getattr(res, "no_call_probability", None)},
    )


def wilson(k: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """The 95% Wilson score interval of k successes in n trials."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4))


def mcnemar(a: list[bool], b: list[bool]) -> dict[str, Any]:
    """Exact McNemar test on paired outcomes: a right & b wrong vs a wrong & b right (two-sided)."""
    only_a = sum(1 for x, y in zip(a, b) if x and not y)
    only_b = sum(1 for x, y in zip(a, b) if y and not x)
    n = only_a + only_b
    k = min(only_a, only_b)
    p = 1.0 if n == 0 else min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)
    return {"only_first": only_a, "only_second": only_b, "p_value": round(p, 4)}


def paired(first: dict[str, CaseResult], second: dict[str, CaseResult], categories: Iterable[str]) -> dict[str, Any]:
    """McNemar of two modes on the cases both answered, per category and pooled."""
    ids = [i for i in first if i in second]
    out: dict[str, Any] = {}
    for cat in list(categories) + ["overall"]:
        chosen = [i for i in ids if cat == "overall" or first[i].category == cat]
        if chosen:
            out[cat] = mcnemar([first[i].correct for i in chosen], [second[i].correct for i in chosen])
    return out


def threshold_policy(rows: list[CaseResult], categories: Iterable[str]) -> Optional[dict[str, Any]]:
    """What no_call="threshold" would score, from a "list" run that reported no_call_probability.

    Below the threshold the answer is the list run's own (the call branch decodes the same tokens);
    at or above it the model answers with a sentence: right on the irrelevance categories, a false
    refusal elsewhere. Each observed probability is tried as the threshold; the best by the
    unweighted mean over categories is reported (chosen on these cases: an optimistic estimate).
    """
    probs = [r.extra.get("no_call_probability") for r in rows]
    if not rows or any(p is None for p in probs):
        return None
    cats = [c for c in categories if any(r.category == c for r in rows)]

    def score_at(t: float) -> dict[str, float]:
        acc = {}
        for c in cats:
            sub = [r for r in rows if r.category == c]
            acc[c] = sum((is_irrelevance(c) if r.extra["no_call_probability"] >= t else r.correct) for r in sub) / len(sub)
        return acc

    candidates = sorted(set(probs)) + [2.0]  # 2.0: never a sentence (the list run itself)
    best_t, best = 2.0, score_at(2.0)
    for t in candidates:
        acc = score_at(t)
        if sum(acc.values()) > sum(best.values()) + 1e-12:
            best_t, best = t, acc
    by_cat = {c: [r.extra["no_call_probability"] for r in rows if r.category == c] for c in cats}
    return {
        "best_threshold": best_t,
        "accuracy": {c: round(v, 4) for c, v in best.items()},
        "overall": round(sum(best.values()) / len(best), 4),
        "list_overall": round(sum(score_at(2.0).values()) / len(cats), 4),
        "median_no_call_probability": {c: round(sorted(v)[len(v) // 2], 6) for c, v in by_cat.items()},
    }


def summarize(results: Iterable[CaseResult], categories: Iterable[str]) -> dict[str, Any]:
    """Per category: n, accuracy and validity with 95% intervals, false refusals (a call was due,
    none made), mean wall time, error types; plus an overall row (unweighted mean over categories,
    as BFCL averages, and the pooled share)."""
    by_cat: dict[str, list[CaseResult]] = {c: [] for c in categories}
    for r in results:
        by_cat.setdefault(r.category, []).append(r)
    out: dict[str, Any] = {}
    for cat, rows in by_cat.items():
        n = len(rows)
        if n == 0:
            continue
        errors: dict[str, int] = {}
        for r in rows:
            if not r.correct:
                key = r.error_type or "wrong"
                errors[key] = errors.get(key, 0) + 1
        correct = sum(r.correct for r in rows)
        valid = sum(r.valid for r in rows)
        out[cat] = {
            "n": n,
            "correct": correct,
            "valid": valid,
            "accuracy": round(correct / n, 4),
            "accuracy_ci95": wilson(correct, n),
            "validity": round(valid / n, 4),
            "validity_ci95": wilson(valid, n),
            "false_refusals": None if is_irrelevance(cat) else sum(1 for r in rows if not made_call(r)),
            "runtime_errors": sum(1 for r in rows if r.exception),
            "mean_wall_s": round(sum(r.wall_s for r in rows) / n, 3),
            "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])),
        }
    cats = [c for c in out]
    if cats:
        n_all = sum(out[c]["n"] for c in cats)
        out["overall"] = {
            "n": n_all,
            "accuracy": round(sum(out[c]["accuracy"] for c in cats) / len(cats), 4),
            "validity": round(sum(out[c]["validity"] for c in cats) / len(cats), 4),
            "accuracy_pooled": round(sum(out[c]["correct"] for c in cats) / n_all, 4),
            "accuracy_pooled_ci95": wilson(sum(out[c]["correct"] for c in cats), n_all),
            "validity_pooled": round(sum(out[c]["valid"] for c in cats) / n_all, 4),
            "false_refusals": sum(out[c]["false_refusals"] or 0 for c in cats),
            "calls_due": sum(out[c]["n"] for c in cats if not is_irrelevance(c)),
            "mean_wall_s": round(sum(out[c]["mean_wall_s"] * out[c]["n"] for c in cats) / n_all, 3),
        }
    return out


def read_raw(path: Path) -> list[CaseResult]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            try:
                rows.append(CaseResult(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a line cut by an interrupted run
    return rows


def append_raw(path: Path, result: CaseResult) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(asdict(result), ensure_ascii=False) + "\n")


# ------------------------------------------------------------------------------------------- command


def results_name(alias: str, limit: Optional[int], seed: int, categories: list[str]) -> str:
    tag = "full" if limit is None else f"limit{limit}-seed{seed}"
    if list(categories) != list(CATEGORIES):
        tag += "-" + "+".join(categories)
    return f"bfcl-{alias}-{tag}"


def run(args: Any) -> int:
    """`ondevice bench bfcl`: run the cases in both modes, print a table, write the summary JSON.
    (``--engine`` with a peer runs `bench peers` instead: see cli.py.)"""
    from ondevice import Settings, ToolCaller
    from ondevice.formats.detect import format_for_path
    from ondevice.models.catalog import manifests, resolve

    from . import RAW_DIR, RESULTS_DIR
    from .common import Progress, command_line, file_mib, git_commit, log, machine_info, utc_now, version_of, write_json

    categories = parse_categories(args.categories)
    modes = mode_names(args.modes)
    limit = None if args.limit is None or args.limit <= 0 else args.limit
    load_checker()  # fail early, before loading a model, if bfcl-eval is missing
    cases = sample_cases(categories, limit, args.seed)

    resolved = resolve(args.model)
    alias = resolved.alias or Path(resolved.path).stem
    name = results_name(alias, limit, args.seed, categories)
    out = Path(args.out) if args.out else RESULTS_DIR / f"{name}.json"
    raw_dir = RAW_DIR if not args.out else out.parent / "raw"  # per-case records, not committed
    resolved_manifest = manifests().get(alias, {})
    # as the runtime chooses: the manifest's format, else what the GGUF's chat template shows
    tool_format = args.tool_format or format_for_path(resolved.path, resolved_manifest)[0]
    # the format is in the raw files' names: --resume never mixes answers to different prompts
    raw_paths = {m: raw_dir / f"{out.stem}.{m}.jsonl" if tool_format == "card" else
                 raw_dir / f"{out.stem}.{tool_format}.{m}.jsonl" for m in modes}

    done: dict[str, dict[str, CaseResult]] = {m: {} for m in modes}
    for m in modes:
        if args.resume:
            done[m] = {r.id: r for r in read_raw(raw_paths[m])}
        elif raw_paths[m].exists():
            raw_paths[m].unlink()
    base = Settings(
        n_ctx=args.n_ctx,
        n_threads=args.threads,
        seed=args.seed,
        temperature=0.0,
        max_tokens=args.max_tokens,
        constrained=True,
        date_string=PINNED_DATE,
        tool_format=tool_format,
    )
    mode_settings = {
        "grammar": base,
        "free": base.with_(constrained=False, max_tokens=args.free_max_tokens),
    } | {f"grammar:{v}": base.with_(no_call=v) for v in NO_CALL_VARIANTS} | {
        # the list's end left to the mask, repeats allowed once, answered calls not refused (before 0.9)
        "grammar:mask": base.with_(list_end="grammar", max_identical_calls=2, refuse_answered_calls=False)}
    log(
        f"[bfcl] {len(cases)} cases x {len(modes)} modes ({', '.join(modes)}) on {resolved.path.name}; "
        f"{'limit ' + str(limit) + ' per category, seed ' + str(args.seed) if limit else 'full set'}"
    )
    # One model for both modes: a case's modes run back to back, so the second finds the prompt
    # already in the KV cache (the prompts are identical) and pays only for its own decoding.
    t0 = time.perf_counter()
    caller = ToolCaller.load(args.model, base)  # by its spec: an alias brings its manifest's no-call default
    load_s = round(time.perf_counter() - t0, 3)

    # Round-robin over categories, so that an interrupted run still covers every category evenly.
    todo = [(c, m) for c in interleave_categories(cases) for m in modes if c.id not in done[m]]
    progress = Progress("bfcl", len(todo), every_s=args.progress_every)
    started = time.perf_counter()
    budget_s = None if args.time_budget_min is None else 60.0 * args.time_budget_min
    stopped_early = False
    for case, mode in todo:
        if budget_s is not None and time.perf_counter() - started >= budget_s and mode == modes[0]:
            stopped_early = True
            log(f"[bfcl] time budget of {args.time_budget_min} min reached: stopping; "
                "the summary covers the cases finished in every mode (continue with --resume)")
            break
        result = run_case(caller, case, mode, mode_settings[mode])
        done[mode][case.id] = result
        append_raw(raw_paths[mode], result)
        stats = []
        for m in modes:
            rows = list(done[m].values())
            if rows:
                acc = sum(r.correct for r in rows) / len(rows)
                val = sum(r.valid for r in rows) / len(rows)
                stats.append(f"{m}: acc {acc:.2f} valid {val:.2f}")
        progress.step(f"{case.category:<22} | " + " | ".join(stats))
    elapsed = time.perf_counter() - started

    # Only cases answered in every mode are summarized, so the columns compare the same prompts.
    wanted = {c.id for c in cases if all(c.id in done[m] for m in modes)}
    partial = len(wanted) < len(cases)
    if partial:
        log(f"[bfcl] partial run: {len(wanted)} of {len(cases)} planned cases finished in every mode")
    summary = {
        "benchmark": "bfcl",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": {"spec": args.model, "alias": alias, "file": resolved.path.name, "size_mib": file_mib(resolved.path)},
        "bfcl_eval": version_of(BFCL_DIST),
        "categories": categories,
        "limit_per_category": limit,
        "seed": args.seed,
        "cases_planned": len(cases),
        "cases_done": len(wanted),
        "partial": partial,
        "settings": {
            m: {
                "constrained": mode_settings[m].constrained,
                "tool_format": tool_format,
                "no_call": (mode_settings[m].no_call or caller.default_no_call) if mode_settings[m].constrained else None,
                "max_tokens": mode_settings[m].max_tokens,
                "n_ctx": mode_settings[m].n_ctx,
                "threads": mode_settings[m].threads,
                "temperature": mode_settings[m].temperature,
                "date_string": PINNED_DATE,
            }
            for m in modes
        },
        "load_s": load_s,
        "elapsed_s": round(elapsed, 1),
        "modes": {
            m: summarize([r for r in done[m].values() if r.id in wanted], categories) for m in modes
        },
        "raw": {m: display_path(raw_paths[m]) for m in modes},
    }
    finished = {m: {i: r for i, r in done[m].items() if i in wanted} for m in modes}
    if "free" in modes:
        summary["paired_vs_free"] = {m: paired(finished[m], finished["free"], categories) for m in modes if m != "free"}
    summary["threshold_calibration"] = {
        m: policy for m in modes if summary["settings"][m]["no_call"] == "list"
        and (policy := threshold_policy(list(finished[m].values()), categories)) is not None
    }
    write_json(out, summary)
    print(format_table(summary))
    log(f"[bfcl] wrote {out} ({elapsed:.0f}s)")
    return 0


def display_path(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (as the reports print it), else whole."""
    from ondevice.paths import REPO_ROOT

    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)




def format_table(summary: dict[str, Any]) -> str:
    """A markdown table: per category, accuracy [95% interval] and validity in each mode, false
    refusals, and McNemar's paired p-value of each grammar mode against free generation."""
    modes = list(summary["modes"])
    pairs = summary.get("paired_vs_free", {})
    header = "| category | n | " + " | ".join(f"acc ({m}) [95% CI] | valid ({m}) | no call ({m})" for m in modes)
    header += "".join(f" | {m} vs free: +/- (McNemar p)" for m in pairs) + " |"
    sep = "|---|---:|" + "---:|---:|---:|" * len(modes) + "---:|" * len(pairs)
    lines = [header, sep]
    for cat in list(summary["categories"]) + ["overall"]:
        first = summary["modes"][modes[0]].get(cat)
        if first is None:
            continue
        cells = []
        for m in modes:
            s = summary["modes"][m].get(cat, {})
            ci = s.get("accuracy_ci95") or s.get("accuracy_pooled_ci95")
            ci_text = f" [{100 * ci[0]:.0f}-{100 * ci[1]:.0f}]" if ci else ""
            refusals = s.get("false_refusals")
            if cat == "overall":
                no_call = f"{refusals}/{s.get('calls_due')} false" if refusals is not None else ""
            elif refusals is None:
                no_call = "(wanted)"
            else:
                no_call = f"{refusals} false"
            cells.append(f"{100 * s.get('accuracy', 0):.1f}%{ci_text} | {100 * s.get('validity', 0):.1f}% | {no_call}")
        for m, by_cat in pairs.items():
            t = by_cat.get(cat)
            cells.append(f"+{t['only_first']}/-{t['only_second']} (p={t['p_value']:.3g})" if t else "")
        label = f"**{cat}**" if cat == "overall" else cat
        lines.append(f"| {label} | {first['n']} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append("overall: accuracy is the unweighted mean over categories, its interval the pooled one; "
                 "'no call' counts false refusals (a call was due, none made); +/-: cases only the grammar mode "
                 "got right / only free generation got right.")
    for m, cal in summary.get("threshold_calibration", {}).items():
        lines.append(f"no_call=threshold, simulated from {m}: best threshold {cal['best_threshold']:.4g}, overall "
                     f"{100 * cal['overall']:.1f}% vs {100 * cal['list_overall']:.1f}% for list; median P(no call) by "
                     f"category {cal['median_no_call_probability']}")
    return "\n".join(lines)
