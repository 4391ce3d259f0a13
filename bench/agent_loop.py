"""`ondevice bench loop`: does an agent loop end? A query, the model's calls, a tool result for each,
then the next turn: a final answer in text, the same call again (the loop an agent framework would
run to its turn limit), or another call. Paired over the same cases: the default refusals (a call
whose result the conversation holds is refused) against none (`--allow-answered-calls`, the list's
end left to the mask, one repeat allowed)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any, Optional

from ondevice import Settings, ToolCaller
from ondevice.formats import get_format

from .bfcl import mcnemar, sample_cases, wilson
from . import RESULTS_DIR
from .common import log, write_json
from .examples import PINNED_DATE, card_examples

MODES = {
    "refuse": {},
    "allow": {"refuse_answered_calls": False, "max_identical_calls": 2, "list_end": "grammar"},
}
CATEGORIES = ["simple_python", "multiple", "live_simple"]


def cases(limit: Optional[int], seed: int) -> list[dict[str, Any]]:
    """The card's examples with tools, then BFCL cases (`limit` a category, fixed by `seed`)."""
    out = [{"id": f"card:{e['name']}", "query": e["query"], "tools": e["tools"]} for e in card_examples()
           if e["tools"] and e["name"] != "wrong_tool"]
    for case in sample_cases(CATEGORIES, limit if limit is not None else 4, seed):
        user = [m["content"] for m in case.messages if m["role"] == "user"]
        if user:
            out.append({"id": f"bfcl:{case.id}", "query": user[-1], "tools": case.tools})
    return out


def tool_result(call: Any) -> str:
    """A plausible result for any call (the model only needs one to answer from)."""
    return json.dumps({"status": "ok", "tool": call.name, "result": f"done: {json.dumps(call.arguments)[:80]}"})


def one_case(caller: ToolCaller, case: dict[str, Any], settings: Settings) -> dict[str, Any]:
    """Turn one, the tool results, turn two; what turn two was."""
    fmt = get_format(caller.tool_format(settings))
    start = time.perf_counter()
    first = caller.call(case["query"], case["tools"], settings=settings)
    row: dict[str, Any] = {"id": case["id"], "first_calls": len(first.calls or [])}
    if not first.calls:
        row["outcome"] = "no_call"
        return row | {"wall_s": round(time.perf_counter() - start, 3)}
    messages = fmt.messages(case["query"], case["tools"], None) + [fmt.answer_turn(first)]
    messages += [{"role": "tool", "content": tool_result(c)} for c in first.calls]
    second = caller.call_messages(messages, case["tools"], settings=settings)
    answered = [c.to_dict() for c in first.calls]
    again = [c for c in second.calls or [] if c.to_dict() in answered]
    row["outcome"] = "answer" if second.message or not second.calls else ("repeat" if again else "other_call")
    row["second"] = second.message or second.text[:200]
    return row | {"wall_s": round(time.perf_counter() - start, 3)}


def run(args: Any) -> int:
    model = args.model or "qwen2.5-coder-0.5b-instruct"
    base = Settings(n_threads=args.threads, date_string=PINNED_DATE, max_tokens=160, seed=args.seed)
    caller = ToolCaller.load(model, base)
    if not get_format(caller.tool_format()).template_layout:
        log(f"[loop] {model} uses the card's format, which has no tool turn: nothing to measure")
        return 2
    todo = cases(args.limit, args.seed)
    rows: dict[str, list[dict[str, Any]]] = {m: [] for m in MODES}
    t0 = time.perf_counter()
    for case in todo:  # the two modes back to back: the same prompt, already in the KV cache
        for mode, changes in MODES.items():
            rows[mode].append(one_case(caller, case, base.with_(**changes)))
    wall = time.perf_counter() - t0
    summary: dict[str, Any] = {"model": model, "cases": len(todo), "wall_s": round(wall, 1),
                               "command": f"ondevice bench loop --model {model}"
                                          + (f" --limit {args.limit}" if args.limit is not None else "")}
    for mode in MODES:
        called = [r for r in rows[mode] if r["outcome"] != "no_call"]
        counts = {k: sum(r["outcome"] == k for r in called) for k in ("answer", "repeat", "other_call")}
        k = counts["answer"]
        summary[mode] = {"turns_after_a_result": len(called), **counts,
                         "final_answer_rate": round(k / len(called), 3) if called else None,
                         "final_answer_95ci": wilson(k, len(called))}
    paired_ids = [r["id"] for r in rows["refuse"] if r["outcome"] != "no_call"]
    by = {m: {r["id"]: r for r in rows[m]} for m in MODES}
    summary["paired_final_answer"] = mcnemar([by["refuse"][i]["outcome"] == "answer" for i in paired_ids],
                                             [by["allow"].get(i, {}).get("outcome") == "answer" for i in paired_ids])
    out = Path(args.out) if args.out else RESULTS_DIR / f"loop-{Path(model).stem}.json"
    write_json(out, {"summary": summary, "rows": rows})
    print(json.dumps(summary, indent=1))
    caller.close()
    return 0
