"""`ondevice bench turns`: what each turn of a tool loop costs. Five turns on a real MCP server's toolset
(Playwright's 25 tools, as its `tools/list` gives them): each turn adds the model's answer, the tool's
result and the next request to the conversation, and asks again, as an agent loop (or a client of the
server, which resends the whole history) does. Per turn: the prompt's tokens, those added since the
last turn, those evaluated, and the time; then every turn's request again on a fresh cache, whose
answer must be the same."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ondevice import Settings, ToolCaller
from ondevice.formats import get_format

from . import BENCH_DIR, RESULTS_DIR
from .common import log, write_json
from .examples import PINNED_DATE

TOOLS_FILE = BENCH_DIR / "fixtures" / "mcp" / "playwright.json"  # @playwright/mcp@0.0.86

# (the request of the turn, the result its call gets back)
TURNS = [
    ("Open https://example.com in the browser.",
     "### Page state\n- Page URL: https://example.com/\n- Page Title: Example Domain\n- Page Snapshot:\n"
     "```yaml\n- heading \"Example Domain\" [level=1] [ref=e3]\n- paragraph [ref=e4]: This domain is for use in "
     "illustrative examples in documents.\n- link \"More information...\" [ref=e6]\n```"),
    ("Click the link \"More information...\" (ref e6).",
     "### Page state\n- Page URL: https://www.iana.org/help/example-domains\n- Page Title: Example Domains\n"
     "- Page Snapshot:\n```yaml\n- heading \"Example Domains\" [level=1] [ref=e12]\n- searchbox \"Search\" [ref=e15]\n"
     "- button \"Go\" [ref=e16]\n```"),
    ("Type \"reserved domains\" into the search box (ref e15).",
     "### Result\nTyped \"reserved domains\" into searchbox \"Search\" [ref=e15]."),
    ("Press the Enter key.",
     "### Page state\n- Page URL: https://www.iana.org/search?q=reserved+domains\n- Page Title: Search results\n"),
    ("Now close the browser.", "### Result\nBrowser closed."),
]


def tools() -> list[dict[str, Any]]:
    return json.loads(TOOLS_FILE.read_text())["tools"]


def loop(caller: ToolCaller, settings: Settings) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Run the turns; each turn's row and the messages its request held."""
    fmt = get_format(caller.tool_format(settings))
    toolset = tools()
    messages = fmt.messages(TURNS[0][0], toolset, None)
    rows, requests, previous = [], [], 0
    for k, (request, result) in enumerate(TURNS):
        if k:
            messages = messages + [{"role": "user", "content": request}]
        requests.append(list(messages))
        start = time.perf_counter()
        answer = caller.call_messages(messages, toolset, settings=settings)
        wall = time.perf_counter() - start
        t = answer.timings
        evaluated = t["prompt_tokens"] - t["prompt_reused"]
        rows.append({"turn": k + 1, "prompt_tokens": t["prompt_tokens"], "added": t["prompt_tokens"] - previous,
                     "reused": t["prompt_reused"], "evaluated": evaluated, "prompt_eval_s": t["prompt_eval_s"],
                     "turn_s": round(wall, 3), "calls": [c.to_dict() for c in answer.calls or []],
                     "text": answer.text})
        previous = t["prompt_tokens"]
        messages = messages + [fmt.answer_turn(answer)]
        messages += [{"role": "tool", "content": result} for _ in answer.calls or []]
    return rows, requests


def run(args: Any) -> int:
    model = args.model or "qwen2.5-coder-0.5b-instruct"
    base = Settings(n_threads=args.threads, n_ctx=8192, date_string=PINNED_DATE, max_tokens=160, seed=args.seed)
    caller = ToolCaller.load(model, base)
    if not get_format(caller.tool_format()).template_layout:
        log(f"[turns] {model} uses the card's format, which has no tool turn: nothing to measure")
        return 2
    t0 = time.perf_counter()
    rows, requests = loop(caller, base)
    loop_s = time.perf_counter() - t0
    caller.close()
    # Each request again on a fresh cache (a new process would have): its answer must be the same.
    for row, messages in zip(rows, requests):
        with ToolCaller.load(model, base.with_(prefix_cache_entries=0)) as fresh:
            again = fresh.call_messages(messages, tools())
        row["fresh_equal"] = again.text == row["text"]
    later = rows[1:]
    added, evaluated = sum(r["added"] for r in later), sum(r["evaluated"] for r in later)
    summary = {"model": model, "tools": len(tools()), "turns": len(rows), "loop_s": round(loop_s, 2),
               "evaluated_over_added": round(evaluated / added, 3) if added else None,
               "all_fresh_equal": all(r["fresh_equal"] for r in rows),
               "command": f"ondevice bench turns --model {model}"
                          + (f" --threads {args.threads}" if args.threads else "")}
    out = Path(args.out) if args.out else RESULTS_DIR / f"turns-{Path(model).stem}.json"
    write_json(out, {"summary": summary, "rows": rows})
    for r in rows:
        log(f"[turns] turn {r['turn']}: {r['prompt_tokens']} tokens, {r['added']} added, {r['evaluated']} evaluated, "
            f"{r['turn_s']} s, fresh equal: {r['fresh_equal']}, calls: {json.dumps(r['calls'])[:120]}")
    print(json.dumps(summary, indent=1))
    return 0
