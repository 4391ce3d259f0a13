"""`ondevice bench schemas`: schema coverage and answer validity on real-world JSON Schemas.

For each set of JSONSchemaBench (``../shared/fixtures/jsonschemabench/``, 300 schemas a set, collected
from GitHub and Glaive's function-calling data), over its object schemas (``type`` absent or
``"object"``, what a tool's parameters can be):

- how many llguidance alone compiles (``LLMatcher.grammar_from_json_schema``, then
  ``validate_grammar_with_warnings``), and how many ondevice accepts as a tool's parameters
  (``normalize_tools`` and the tool-call grammar); the reasons for the refusals, by keyword;
- for a fixed-seed sample of the accepted ones, a real constrained call on the model; its arguments
  are validated with ``jsonschema`` against the ORIGINAL schema (the file's own, read with the draft
  its ``$schema`` names, else 2020-12). Counted: calls made, answers invalid, errors raised.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Optional

SETS = ("Glaiveai2K", "Github_easy", "Github_medium", "Github_hard")
QUERY = "Call {name} now, filling in every argument with a realistic value."


def fixtures_dir() -> Path:
    from ondevice.paths import REPO_ROOT

    for parent in REPO_ROOT.parents:  # ../shared beside the checkout (or a worktree's checkout)
        folder = parent / "shared" / "fixtures" / "jsonschemabench"
        if folder.is_dir():
            return folder
    return REPO_ROOT.parent / "shared" / "fixtures" / "jsonschemabench"


def object_schemas(path: Path) -> dict[str, Any]:
    """The set's schemas a tool's parameters can be: ``type`` absent or ``"object"``."""
    data = json.loads(path.read_text(encoding="utf-8"))
    return {k: v for k, v in data.items() if isinstance(v, dict) and v.get("type", "object") == "object"}


def llguidance_compiles(schema: dict[str, Any]) -> bool:
    from llguidance import LLMatcher

    try:
        grammar = LLMatcher.grammar_from_json_schema(schema)
    except Exception:  # noqa: BLE001 - any refusal counts as not compiled
        return False
    is_error, _ = LLMatcher.validate_grammar_with_warnings(grammar)
    return not is_error


def tool_for(key: str, schema: dict[str, Any]) -> dict[str, Any]:
    name = re.sub(r"_[0-9a-f]{8}$", "", Path(key).stem)
    name = re.sub(r"[^A-Za-z0-9_]", "_", name) or "f"
    return {"name": name, "description": schema.get("description", f"Tool {name}") if isinstance(schema.get("description"), str) else f"Tool {name}",
            "parameters": schema}


def ondevice_accepts(tool: dict[str, Any]) -> Optional[str]:
    """None when ondevice accepts the tool, else the refusal message."""
    from ondevice.errors import ToolSchemaError
    from ondevice.formats.grammar import compile_grammar
    from ondevice.schema.tools import normalize_tools

    try:
        compile_grammar(normalize_tools([tool]))
    except ToolSchemaError as exc:
        return str(exc)
    return None


def refusal_reason(message: str) -> str:
    match = re.search(r"unsupported JSON Schema keyword '([^']+)'", message)
    if match:
        return match.group(1)
    if "grammar compiler refused" in message:
        return "llguidance: " + message.split("parameters: ", 1)[-1][:60]
    return message.split(": ", 1)[-1][:60]


def original_validator(schema: dict[str, Any]) -> Any:
    import jsonschema

    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema)


def run(args: Any) -> int:
    from ondevice import Settings, ToolCaller
    from ondevice.models.catalog import resolve

    from . import RESULTS_DIR
    from .common import command_line, git_commit, log, machine_info, utc_now, write_json

    folder = Path(args.fixtures) if args.fixtures else fixtures_dir()
    if not folder.is_dir():
        raise SystemExit(f"ondevice bench schemas: no JSONSchemaBench fixtures at {folder} (pass --fixtures DIR)")
    per_set: dict[str, Any] = {}
    samples: dict[str, list[tuple[str, dict[str, Any]]]] = {}
    for name in SETS:
        schemas = object_schemas(folder / f"{name}.json")
        llg = sum(llguidance_compiles(s) for s in schemas.values())
        reasons: Counter[str] = Counter()
        accepted: list[tuple[str, dict[str, Any]]] = []
        llg_only = 0
        for key, schema in schemas.items():
            tool = tool_for(key, schema)
            refusal = ondevice_accepts(tool)
            if refusal is None:
                accepted.append((key, tool))
            else:
                reasons[refusal_reason(refusal)] += 1
                llg_only += llguidance_compiles(schema)
        per_set[name] = {"schemas": len(schemas), "llguidance": llg, "ondevice": len(accepted),
                         "llguidance_only": llg_only, "refusals": dict(reasons.most_common())}
        rng = random.Random(args.seed)
        samples[name] = rng.sample(accepted, min(args.limit, len(accepted)))
        log(f"[schemas] {name}: {len(schemas)} object schemas, llguidance {llg}, ondevice {len(accepted)}")

    resolved = resolve(args.model)
    settings = Settings(n_ctx=args.n_ctx, n_threads=args.threads, seed=args.seed, temperature=args.temperature,
                        max_tokens=args.max_tokens, date_string="26 Jul 2024")
    with ToolCaller.load(resolved.path, settings) as caller:
        for name in SETS:
            stats = {"sampled": 0, "with_calls": 0, "valid": 0, "invalid": 0, "errors": 0, "truncated": 0}
            failures: list[str] = []
            start = time.perf_counter()
            for i, (key, tool) in enumerate(samples[name]):
                stats["sampled"] += 1
                validator = original_validator(tool["parameters"])
                try:
                    result = caller.call(QUERY.format(name=tool["name"]), [tool],
                                         settings=settings.with_(seed=args.seed + i))
                except Exception as exc:  # noqa: BLE001 - every raised error is counted and named
                    stats["errors"] += 1
                    failures.append(f"{key}: raised {type(exc).__name__}: {str(exc)[:200]}")
                    continue
                stats["truncated"] += result.truncated
                calls = result.calls or []
                stats["with_calls"] += bool(calls)
                bad = [e.message for c in calls for e in validator.iter_errors(c.arguments)]
                if bad:
                    stats["invalid"] += 1
                    failures.append(f"{key}: invalid under the original schema: {bad[0][:200]}")
                else:
                    stats["valid"] += 1
            stats["seconds"] = round(time.perf_counter() - start, 1)
            per_set[name]["calls"] = stats
            per_set[name]["failures"] = failures
            log(f"[schemas] {name}: {stats}")
    data = {
        "benchmark": "schemas",
        "date": utc_now(),
        "command": command_line(args),
        "git_commit": git_commit(),
        "machine": machine_info(),
        "model": resolved.alias or str(resolved.path),
        "seed": args.seed,
        "sample_per_set": args.limit,
        "temperature": args.temperature,
        "sets": per_set,
    }
    out = Path(args.out) if args.out else RESULTS_DIR / "schemas.json"
    write_json(out, data)
    print(format_table(data))
    return 0


def format_table(data: dict[str, Any]) -> str:
    lines = [
        "| set | object schemas | llguidance alone compiles | ondevice accepts | sampled calls | with a call | valid under the original schema | errors raised |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in data["sets"].items():
        c = s.get("calls", {})
        lines.append(
            f"| {name} | {s['schemas']} | {s['llguidance']} | {s['ondevice']} | {c.get('sampled', '-')} | "
            f"{c.get('with_calls', '-')} | {c.get('valid', '-')} / {c.get('sampled', '-')} | {c.get('errors', '-')} |"
        )
    return "\n".join(lines)
