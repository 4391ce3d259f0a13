"""Calls nobody asked for, on BFCL cases disjoint from the judged sample.

The judged sample is the one `ondevice bench peers --limit 20` (seed 0) runs. This benchmark draws
other cases of every category, answers each with the model's default no-call mode, and records the
probability of "no call" at the first token (the share of the unconstrained distribution on tokens
that do not start a call). It classifies every call beyond the due ones (another tool, the same tool
with other arguments, an identical repeat, a call where a sentence was right) and sweeps the no-call
threshold over these cases. The threshold is chosen by a rule fixed before the run: the smallest
one whose false refusals (a sentence where a call was due) stay at or under `--max-refusals` of the
cases that need a call. It is then judged on the peer sample, which it never saw. The run has
refuse_ungrounded_calls off and reports what that check does to the same answers.
"""

from __future__ import annotations

import json
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

from . import bfcl as B

JUDGED_LIMIT, JUDGED_SEED = 20, 0  # the sample `ondevice bench peers --limit 20` is judged on
GRID = [round(0.05 * i, 2) for i in range(1, 20)]


def disjoint_cases(relevant: int, irrelevant: int, seed: int) -> list[B.Case]:
    """`relevant` cases of each category that needs a call and `irrelevant` of each irrelevance
    category, none of them in the judged sample."""
    judged = {c.id for c in B.sample_cases(B.CATEGORIES, JUDGED_LIMIT, JUDGED_SEED)}
    chosen: list[B.Case] = []
    for category in B.CATEGORIES:
        rest = [c for c in B.load_category(category) if c.id not in judged]
        n = min(irrelevant if B.is_irrelevance(category) else relevant, len(rest))
        rng = random.Random(f"nocall:{seed}:{category}")
        chosen.extend(rest[i] for i in sorted(rng.sample(range(len(rest)), n)))
    return chosen


def extra_kinds(case: B.Case, calls: Optional[list[dict[str, Any]]]) -> list[str]:
    """What each call beyond the due ones is: "call where a sentence was right" (irrelevance),
    "identical repeat", "same tool, other arguments", or "another tool"."""
    calls = calls or []
    if B.is_irrelevance(case.category):
        return ["call where a sentence was right"] * len(calls)
    due = Counter(next(iter(g)) for g in case.ground_truth or [])
    known = set(due)  # the tools the ground truth calls, then every tool called so far
    seen: set[str] = set()
    kinds = []
    for call in calls:
        key = json.dumps(call, sort_keys=True)
        name = call.get("name")
        if due[name] > 0:
            due[name] -= 1
        elif key in seen:
            kinds.append("identical repeat")
        elif name in known:
            kinds.append("same tool, other arguments")
        else:
            kinds.append("another tool")
        seen.add(key)
        known.add(name)
    return kinds


def sweep(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per threshold t: irrelevance cases answered with a sentence (p >= t) and false refusals
    (cases that need a call with p >= t), each over its count."""
    irr = [r for r in rows if B.is_irrelevance(r["category"])]
    rel = [r for r in rows if not B.is_irrelevance(r["category"])]
    out = []
    for t in GRID:
        out.append({"threshold": t,
                    "irrelevance_no_call": sum(r["p_no_call"] >= t for r in irr), "irrelevance_n": len(irr),
                    "false_refusals": sum(r["p_no_call"] >= t for r in rel), "relevant_n": len(rel)})
    return out


def choose(table: list[dict[str, Any]], max_refusals: float) -> Optional[float]:
    """The smallest threshold whose false-refusal share is at most `max_refusals`."""
    for row in table:
        if row["relevant_n"] and row["false_refusals"] / row["relevant_n"] <= max_refusals:
            return row["threshold"]
    return None


def grounding_effect(rows: list[dict[str, Any]], cases: dict[str, B.Case], required: bool = True) -> dict[str, Any]:
    """What refuse_ungrounded_calls does to these answers (the run itself has it off): a first call
    it refuses becomes a sentence, a later one ends the list. `required` False: its first rule
    alone (one value mentioned), without the tools' schemas or the answer's earlier calls."""
    from ondevice.engine.grounding import Grounding, conversation_text
    from ondevice.schema.tools import normalize_tools

    irrelevant = {c: [0, 0] for c in B.CATEGORIES if B.is_irrelevance(c)}
    refusals, relevant, lost, extra = 0, 0, 0, 0
    for row in rows:
        case = cases[row["id"]]
        grounding = Grounding(conversation_text(list(case.messages)))
        parameters = {t.name: t.parameters for t in normalize_tools(case.tools)}
        kept = []
        for call in row["calls"]:
            if not (grounding.grounded(call, parameters.get(call.get("name")), kept) if required
                    else grounding.grounded(call)):
                break
            kept.append(call)
        if row["due"] == 0:
            irrelevant[row["category"]][0] += not kept
            irrelevant[row["category"]][1] += 1
        else:
            relevant += 1
            refusals += not kept
            lost += bool(row["calls"] and not kept and row["correct"])
        extra += max(0, len(kept) - row["due"])
    return {"irrelevance_no_call": {c: f"{a}/{n}" for c, (a, n) in irrelevant.items()},
            "false_refusals": f"{refusals}/{relevant}", "correct_answers_lost": lost, "extra_calls": extra}


def run(args: Any) -> int:
    """`ondevice bench nocall`."""
    from ondevice import Settings, ToolCaller
    from ondevice.models.catalog import resolve
    from ondevice_bench.examples import PINNED_DATE

    from . import RESULTS_DIR
    from .common import Progress, command_line, git_commit, log, machine_info, utc_now, write_json

    B.load_checker()
    if args.rescore:
        return rescore(Path(args.rescore), command_line(args))
    cases = disjoint_cases(args.relevant, args.irrelevant, args.seed)
    resolved = resolve(args.model)
    alias = resolved.alias or Path(resolved.path).stem
    settings = Settings(n_ctx=args.n_ctx, n_threads=args.threads, seed=0, temperature=0.0,
                        max_tokens=args.max_tokens, constrained=True, date_string=PINNED_DATE, no_call="text",
                        refuse_ungrounded_calls=False)
    free_settings = settings.with_(constrained=False, max_tokens=min(args.max_tokens, 200))
    rows: list[dict[str, Any]] = []
    log(f"[nocall] {len(cases)} BFCL cases outside the judged sample, on {resolved.path.name}")
    with ToolCaller.load(args.model, settings) as caller:
        progress = Progress("nocall", len(cases), every_s=10.0)
        for case in B.interleave_categories(cases):
            query, history = B.to_query_and_history(case, caller.tool_format(settings))
            t0 = time.perf_counter()
            res = caller.call(query, case.tools, history=history, settings=settings)
            calls = res.calls_as_dicts()
            scored = B.score(case, "ondevice", calls, res.text, wall_s=round(time.perf_counter() - t0, 3))
            due = 0 if B.is_irrelevance(case.category) else len(case.ground_truth or [])
            row = {"id": case.id, "category": case.category, "p_no_call": round(res.no_call_probability, 6),
                   "calls": calls, "text": res.text, "due": due, "correct": scored.correct,
                   "extra": extra_kinds(case, calls) if len(calls) > due else [], "false_refusal": due > 0 and not calls}
            if row["extra"]:  # what the model writes without the grammar, for the classification
                free = caller.call(query, case.tools, history=history, settings=free_settings)
                row["free_text"] = free.text
            rows.append(row)
            progress.step(f"{case.category:<22} p(no call) {res.no_call_probability:.3f}")
    table = sweep(rows)
    threshold = choose(table, args.max_refusals)
    summary = {
        "benchmark": "nocall", "date": utc_now(), "command": command_line(args), "git_commit": git_commit(),
        "machine": machine_info(), "model": alias, "cases": len(rows),
        "judged_sample_excluded": f"bench peers --limit {JUDGED_LIMIT} --seed {JUDGED_SEED}",
        "rule": f"the smallest threshold with false refusals <= {args.max_refusals:.0%} of the cases that need a call",
        "chosen_threshold": threshold,
        "default_mode": {"irrelevance_no_call": sum(1 for r in rows if r["due"] == 0 and not r["calls"]),
                         "false_refusals": sum(r["false_refusal"] for r in rows),
                         "extra_calls": dict(Counter(k for r in rows for k in r["extra"]))},
        "with_grounding_check": grounding_effect(rows, {c.id: c for c in cases}),
        "with_one_value_rule_only": grounding_effect(rows, {c.id: c for c in cases}, required=False),
        "sweep": table, "rows": rows,
    }
    out = Path(args.out) if args.out else RESULTS_DIR / f"nocall-{alias}.json"
    write_json(out, summary)
    print(format_table(summary))
    return 0


def rescore(path: Path, command: str) -> int:
    """The grounding check of this checkout applied to the answers a run stored (the check is off
    while they are drawn, so they do not depend on it); the file is rewritten with both effects."""
    from .common import write_json

    try:
        summary = json.loads(path.read_text())
        rows = summary["rows"]
    except (OSError, ValueError, KeyError) as e:
        raise SystemExit(f"ondevice bench nocall: --rescore needs a file `ondevice bench nocall` wrote: {path}: {e}")
    cases = {c.id: c for category in B.CATEGORIES for c in B.load_category(category)}
    missing = [r["id"] for r in rows if r["id"] not in cases]
    if missing:
        raise SystemExit(f"ondevice bench nocall: {len(missing)} ids of {path} are not in this BFCL data "
                         f"(first: {missing[0]}): rescore with the bfcl-eval version the run used")
    summary["with_grounding_check"] = grounding_effect(rows, cases)
    summary["with_one_value_rule_only"] = grounding_effect(rows, cases, required=False)
    summary["rescored"] = command
    write_json(path, summary)
    print(format_table(summary))
    return 0


def format_table(summary: dict[str, Any]) -> str:
    """The sweep as Markdown, the chosen threshold marked."""
    lines = ["| P(no call) threshold | irrelevance answered without a call | false refusals |", "|---:|---:|---:|"]
    for row in summary["sweep"]:
        mark = " (the rule's pick)" if row["threshold"] == summary["chosen_threshold"] else ""
        lines.append(f"| {row['threshold']:.2f}{mark} | {row['irrelevance_no_call']}/{row['irrelevance_n']} | "
                     f"{row['false_refusals']}/{row['relevant_n']} |")
    d, g, one = summary["default_mode"], summary["with_grounding_check"], summary.get("with_one_value_rule_only")
    lines.append(f"\nthe model's own first token, no check: irrelevance without a call {d['irrelevance_no_call']}, "
                 f"false refusals {d['false_refusals']}, extra calls {d['extra_calls']}")
    if one:
        lines.append(f"with its first rule only (one value mentioned): irrelevance without a call "
                     f"{one['irrelevance_no_call']}, false refusals {one['false_refusals']} "
                     f"({one['correct_answers_lost']} right answers lost), extra calls {one['extra_calls']}")
    lines.append(f"with refuse_ungrounded_calls (one value mentioned, every required open value given, no variant "
                 f"of an earlier call): irrelevance "
                 f"without a call {g['irrelevance_no_call']}, false refusals {g['false_refusals']} "
                 f"({g['correct_answers_lost']} right answers lost), extra calls {g['extra_calls']}")
    return "\n".join(lines)
