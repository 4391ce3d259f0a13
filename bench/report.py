"""`ondevice bench report`: docs/benchmarks.md and PNG plots from the JSON results in bench/results/.

Every table in the report is followed by the date, the machine and the exact command that produced
its numbers (taken from the result file, not from this run). ``README_headline.md`` beside the report
is the short table for the README.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

from .common import machine_line, read_json

REPORT_NAME = "benchmarks.md"
HEADLINE_NAME = "README_headline.md"
IMG_DIR = "img"


# ------------------------------------------------------------------------------------------- inputs


def find_results(results_dir: Path, bfcl_choice: Optional[str] = None) -> dict[str, Any]:
    """The result files to report: one BFCL run per model (a finished run before a partial one, then
    the full set before a sample, then the largest), the speed run and the quant run, each when present."""
    found: dict[str, Any] = {}
    bfcl_files = sorted(results_dir.glob("bfcl-*.json"))
    if bfcl_choice:
        chosen = Path(bfcl_choice)
        found["bfcl"] = [(chosen, read_json(chosen))]
    elif bfcl_files:
        loaded = [(p, read_json(p)) for p in bfcl_files]

        def rank(item: tuple[Path, Any]) -> tuple[int, int, int]:
            data = item[1]
            first = next(iter(data["modes"].values()), {})
            n = first.get("overall", {}).get("n", 0)
            return (0 if data.get("partial") else 1, 1 if data.get("limit_per_category") is None else 0, n)

        by_model: dict[str, list[tuple[Path, Any]]] = {}
        for item in loaded:
            by_model.setdefault(item[1]["model"]["alias"], []).append(item)
        found["bfcl"] = [max(items, key=rank) for _, items in sorted(by_model.items())]
    for key, pattern in (("speed", "speed-*.json"), ("quant", "quant-*.json"), ("schemas", "schemas*.json"),
                         ("mcp", "mcp-servers*.json"), ("nocall", "nocall-*.json")):
        files = sorted(results_dir.glob(pattern), key=lambda p: p.stat().st_mtime)
        if key == "nocall" and files:  # every draw: the one a rule was chosen on, and those that test it
            found[key] = [(f, read_json(f)) for f in sorted(files, key=lambda f: (len(f.name), f.name))]
        elif files:
            found[key] = (files[-1], read_json(files[-1]))
    return found


def provenance(data: dict[str, Any]) -> str:
    return (
        f"*Measured {data.get('date', '?')} on {machine_line(data.get('machine', {}))}; "
        f"llama-cpp-python {data.get('machine', {}).get('llama_cpp_python', '?')}. "
        f"Reproduce with:* `{data.get('command', '?')}`"
    )


def _empty_list(get_weather: dict[str, Any]) -> bool:
    """The get_weather measurement ended in `[]`, so it timed no complete call."""
    return str(get_weather.get("text", "")).startswith("<tool_call>[]")


def _pct(x: Optional[float]) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}%"


def _num(x: Optional[float], fmt: str = "{:.1f}") -> str:
    return "n/a" if x is None else fmt.format(x)


# -------------------------------------------------------------------------------------------- plots


def plot_bfcl(data: dict[str, Any], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    modes = list(data["modes"])
    cats = [c for c in data["categories"] if c in data["modes"][modes[0]]] + ["overall"]
    x = np.arange(len(cats))
    fig, axes = plt.subplots(2, 1, figsize=(11, 7.5), sharex=True)
    width = 0.8 / max(1, len(modes))
    colors = {"grammar": "#1f77b4", "free": "#ff7f0e"}
    labels = {"grammar": "with grammar", "free": "without grammar"}
    for ax, metric, title in ((axes[0], "accuracy", "BFCL accuracy (AST checker)"),
                              (axes[1], "validity", "Format validity (parses, given tools, schema-valid arguments)")):
        for i, m in enumerate(modes):
            vals = [100 * data["modes"][m].get(c, {}).get(metric, 0) for c in cats]
            bars = ax.bar(x + (i - (len(modes) - 1) / 2) * width, vals, width, label=labels.get(m, m),
                          color=colors.get(m))
            for b, v in zip(bars, vals):
                ax.text(b.get_x() + b.get_width() / 2, v + 1, f"{v:.0f}", ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, 112)
        ax.set_ylabel("%")
        ax.set_title(title, fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].legend(loc="upper right", fontsize=8)
    axes[1].set_xticks(x)
    axes[1].set_xticklabels(cats, rotation=30, ha="right", fontsize=8)
    n = data["modes"][modes[0]].get("overall", {}).get("n", 0)
    scope = "full set" if data.get("limit_per_category") is None else f"{data['limit_per_category']} per category"
    fig.suptitle(f"{data['model']['alias']} on BFCL ({scope}, {n} cases), with vs without grammar", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return out


def plot_quant(quant: Optional[dict[str, Any]], speed: Optional[dict[str, Any]], out: Path) -> Optional[Path]:
    """Size vs speed vs quality per quant type: the stand-in's quants (quality = top-1 agreement with
    F16, colour = KL) and, when measured, the 1B shape's quants (speed only: random weights)."""
    if not quant and not speed:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in (quant, speed) if p]
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.6), squeeze=False)
    col = 0
    if quant:
        ax = axes[0][col]
        col += 1
        rows = quant["results"]
        xs = [r["size_mib"] for r in rows.values()]
        ys = [r["decode_tok_s"] for r in rows.values()]
        agree = [100 * r["top1_agreement"] for r in rows.values()]
        sc = ax.scatter(xs, ys, c=agree, cmap="viridis", s=90, vmin=min(agree + [90]), vmax=100, edgecolors="k")
        for (name, r), x, y in zip(rows.items(), xs, ys):
            ax.annotate(f"{name}\ntop-1 {100 * r['top1_agreement']:.1f}%\nKL {r['kl_mean']:.3f}", (x, y),
                        textcoords="offset points", xytext=(6, 4), fontsize=7)
        fig.colorbar(sc, ax=ax, label="top-1 agreement with F16 (%)")
        ax.margins(x=0.25, y=0.2)
        ax.set_xlabel("file size (MiB)")
        ax.set_ylabel("decode tok/s (llama.cpp)")
        ax.set_title("Stand-in (135M): size vs speed vs agreement with F16", fontsize=9)
        ax.grid(alpha=0.3)
    if speed:
        import numpy as np

        ax = axes[0][col]
        res = speed["results"]
        names = list(res)
        kinds = [("grammar_tok_s", "ours, grammar", "#1f77b4"), ("free_tok_s", "ours, no grammar", "#ff7f0e"),
                 ("native_tok_s", "llama.cpp native", "#2ca02c")]
        x = np.arange(len(names))
        width = 0.26
        for i, (key, label, color) in enumerate(kinds):
            ys = [res[n]["decode"].get(key) or 0 for n in names]
            bars = ax.bar(x + (i - 1) * width, ys, width, label=label, color=color)
            for b, v in zip(bars, ys):
                ax.text(b.get_x() + b.get_width() / 2, v, f"{v:.1f}", ha="center", va="bottom", fontsize=7)
        ax.set_xticks(x)
        ax.set_xticklabels([f"{n}\n{res[n]['size_mib']:.0f} MiB" for n in names], fontsize=8)
        ax.set_ylabel("decode tok/s")
        ax.set_title("Llama-3.2-1B shape (random weights): size vs decode speed", fontsize=9)
        ax.legend(fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110, format="png")
    plt.close(fig)
    return out


# ----------------------------------------------------------------------------------------- sections


def bfcl_section(path: Path, data: dict[str, Any], img: Optional[str]) -> list[str]:
    from .bfcl import format_table

    modes = list(data["modes"])
    scope = "the full set" if data.get("limit_per_category") is None else (
        f"a stratified subsample of {data['limit_per_category']} cases per category (seed {data['seed']}; "
        "all cases where a category has fewer)")
    if data.get("partial"):
        scope += (f"; **partial run**: {data['cases_done']} of the {data['cases_planned']} planned cases finished "
                  "in both modes before the time budget (cases run round-robin over categories, so each category "
                  "is cut evenly; `--resume` continues it)")
    settings = data.get("settings", {})
    lines = [
        f"## BFCL accuracy, with and without the grammar: {data['model']['alias']}",
        "",
        f"Model: `{data['model']['alias']}` ({data['model']['file']}, {data['model']['size_mib']} MiB). "
        f"Data and AST checker: bfcl-eval {data.get('bfcl_eval')}, {scope}. Greedy decoding; "
        + ", ".join(f"{m}: max_tokens {settings.get(m, {}).get('max_tokens')}" for m in modes)
        + f"; n_ctx {settings.get(modes[0], {}).get('n_ctx')}, {settings.get(modes[0], {}).get('threads')} thread(s); "
        f"tool format {settings.get(modes[0], {}).get('tool_format', 'card')} in every mode"
        + "".join(f"; {m}: no_call {settings[m]['no_call']}" for m in modes if settings.get(m, {}).get("no_call"))
        + ".",
        "",
        "*accuracy* is BFCL's verdict (AST checker against the possible answers; for the irrelevance "
        "categories, no call made). *valid* is the share of outputs that parse in the tool format (card: one "
        "`<tool_call>[...]</tool_call>` list; native: `<tool_call>` blocks, a reply without one being no call) "
        "naming given tools with arguments valid against the tool's JSON Schema (no call is valid). "
        "'overall' is the unweighted mean over categories, as BFCL averages.",
        "",
        format_table(data),
        "",
        provenance(data),
        "",
    ]
    if img:
        lines += [f"![BFCL accuracy and validity with vs without grammar]({img})", ""]
    if data.get("limit_per_category") is not None or data.get("partial"):
        from .bfcl import EXPECTED_COUNTS

        est = 0.0
        for cat, full_n in EXPECTED_COUNTS.items():
            per_case = sum(data["modes"][m].get(cat, {}).get("mean_wall_s", 0.0) for m in modes)
            if not per_case:  # a category this run did not cover: the run's overall mean
                per_case = sum(data["modes"][m].get("overall", {}).get("mean_wall_s", 0.0) for m in modes)
            est += per_case * full_n
        lines += [f"At this run's mean time per case in each category, the full set ({sum(EXPECTED_COUNTS.values())} "
                  f"cases, {' + '.join(modes)}) would take about {est / 3600:.1f} h on the same machine under the "
                  "same load.", ""]
    errors = []
    for m in modes:
        for cat, s in data["modes"][m].items():
            if cat == "overall":
                continue
            if s.get("runtime_errors"):
                errors.append(f"{m}/{cat}: {s['runtime_errors']} runtime error(s)")
    if errors:
        lines += ["Runtime errors (counted as wrong and invalid): " + "; ".join(errors) + ".", ""]
    return lines


def speed_section(path: Path, data: dict[str, Any]) -> list[str]:
    from .speed import format_table

    lines = [
        "## Speed and memory, Llama-3.2-1B shape",
        "",
        "Random-weight GGUFs with the exact Llama-3.2-1B shape and the real Llama 3 tokenizer. "
        "Warm and get_weather calls replay the answer the card reports for the fine-tune (the sampler pays "
        "for its greedy pick, then returns the answer's next token), so their sampled and forced steps are "
        "those of a real call; a random model's own choices are noise. "
        f"Decode: {data['settings']['decode_tokens']} tokens after the card's get_weather prompt, median of "
        f"{data['settings']['repeats']} interleaved repeats; *grammar* counts sampled tokens only (forced "
        "tokens' evaluation is charged to them). *native llama.cpp* is "
        f"{data.get('native_method')}, same file, prompt, context and threads. Cold = a freshly loaded model "
        "(prompt tok/s over the card's examples, median); warm = tools prefix already evaluated.",
        "",
        format_table(data),
        "",
    ]
    for label, r in data["results"].items():
        gw = r["get_weather"]
        cold = ", ".join(f"{c['example']} {c['wall_s']:.2f}s" for c in r["cold"])
        warm = ", ".join(f"{w['example']} {w['wall_s']:.3f}s" for w in r["warm"])
        lines += [
            f"- **{label}**: get_weather under the grammar {gw['grammar_wall_s']:.3f}s for {gw['output_tokens']} "
            f"output tokens ({gw['forced_tokens']} forced, {gw['sampled_tokens']} sampled, finish: {gw['finish_reason']}"
            f"{', truncated by the budget' if gw.get('truncated') else ''}) vs {gw['free_wall_s']:.3f}s free "
            f"for as many tokens: ratio {gw['ratio']}"
            + (" (**the random-weight model chose the empty list `[]`, so this is not a complete get_weather call "
               "and does not test the <= 0.6 target**)" if _empty_list(gw) else "")
            + ". llama.cpp's own perf counters: "
            f"{_num(r['decode'].get('native_llama_perf_tok_s'))} tok/s. Cold calls: {cold}. Warm calls: {warm}.",
        ]
    lines += ["", "Targets (issue 5), from this run:", ""]
    lines += ["| quant | grammar/native decode >= 0.95 | grammar/free decode >= 0.97 | get_weather grammar/free wall <= 0.6 "
              "| warm get_weather < 1 s |", "|---|---|---|---|---|"]
    for label, r in data["results"].items():
        d = r["decode"]
        warm = r["warm"][0]["wall_s"] if r.get("warm") else None
        lines.append(
            f"| {label} | {_check(d.get('grammar_vs_native'), lambda v: v >= 0.95)} "
            f"| {_check(d.get('grammar_vs_free'), lambda v: v >= 0.97)} "
            f"| {_check(r['get_weather'].get('ratio'), lambda v: v <= 0.6)}"
            f"{' (empty list, not a get_weather call)' if _empty_list(r['get_weather']) else ''} "
            f"| {_check(warm, lambda v: v < 1.0, '{:.3f} s')} |"
        )
    loads = [f"{label} {r.get('load_avg_start')} -> {r.get('load_avg_end')}" for label, r in data["results"].items()
             if r.get("load_avg_start")]
    if loads:
        lines += ["", "Machine load average (1, 5, 15 min) at the start and end of each measurement: "
                  + "; ".join(loads) + ". Above the core count, other processes were competing for the CPU and "
                  "absolute speeds are lower than on an idle machine; the ratios are measured interleaved, "
                  "repeat by repeat, so they are affected less."]
    lines += ["", provenance(data), ""]
    return lines


def _check(value: Optional[float], ok: Any, fmt: str = "{:.3f}") -> str:
    if value is None:
        return "n/a"
    return f"{fmt.format(value)} {'PASS' if ok(value) else 'FAIL'}"


def quant_section(path: Path, data: dict[str, Any], img: Optional[str]) -> list[str]:
    from .quant import format_table

    lines = [
        "## Quantization quality",
        "",
        f"{data['model']}. Each quant type against the F16 file on {len(data['texts'])} fixed texts "
        f"({data['positions']} token positions: the card's examples with their answers and BFCL prompts): mean "
        "and 99th-percentile KL divergence of the next-token distributions, and top-1 agreement. The F16 "
        "reference is the dequantized Q4_1 stand-in, so this measures what each quant type adds.",
        "",
        format_table(data),
        "",
        "Reading it: SmolLM2's hidden size (576) is not a multiple of 256, the k-quant block, so llama.cpp "
        "stores most of its matrices in a fallback type (the *weights by type* column): Q4_K_M is mostly "
        "Q5_0 and Q5_K_M mostly Q5_1, and the two end up with nearly the same bits per weight. On these "
        "weights, which already sit on Q4_1's grid, Q5_1 happens to land a little further from them than "
        "Q5_0 (the weight error column), hence Q5_K_M's slightly higher KL. The F16 row is the control: "
        "the same file measured against itself gives exactly 0. Top-1 agreement counts every position, "
        "near-ties included, so even Q8_0, with the smallest weight error, flips a few percent of them on this small model.",
        "",
        provenance(data),
        "",
    ]
    if img:
        lines += [f"![size vs speed vs quality per quant type]({img})", ""]
    return lines


def schemas_section(path: Path, data: dict[str, Any]) -> list[str]:
    from .schemas import format_table

    lines = [
        "## Schema coverage and answer validity on real-world schemas",
        "",
        "JSONSchemaBench's object schemas (GitHub, Glaive function calling): how many llguidance alone compiles, "
        "how many ondevice accepts as a tool's parameters, and, for a fixed-seed sample of the accepted ones, "
        f"real constrained calls on {data.get('model', '?')} (temperature {data.get('temperature', '?')}) whose "
        "arguments are validated with `jsonschema` against the original schema.",
        "",
        format_table(data),
        "",
        provenance(data),
        "",
    ]
    refusals = {name: s.get("refusals", {}) for name, s in data["sets"].items()}
    if any(refusals.values()):
        lines += ["Refusals by keyword: " + "; ".join(
            f"{name}: " + ", ".join(f"{k} {n}" for k, n in r.items()) for name, r in refusals.items() if r), ""]
    return lines


def nocall_section(path: Path, data: dict[str, Any], heading: bool = True) -> list[str]:
    from .nocall import format_table

    rescored = [f"The grounding check's effect recomputed on these answers with: `{data['rescored']}`", ""] \
        if data.get("rescored") else []
    intro = ["## Calls nobody asked for", "",
             "refuse_ungrounded_calls's rule (engine/grounding.py) was chosen on the first draw below and tested on "
             "the second (another seed, 22 cases shared with the first); the peer run judged it on the 196-case "
             "sample neither draw holds (docs/benchmark-notes.md).", ""]
    return (intro if heading else []) + [
        f"### {path.name}",
        "",
        f"{data['cases']} BFCL cases outside the judged sample ({data['judged_sample_excluded']}), on {data['model']}, "
        "answered with the model's own first token deciding between a call and a sentence, the grounding check off. "
        "Every call beyond the due ones, classified; the probability of no call at the first token as a threshold; "
        "and what refuse_ungrounded_calls does to the same answers.",
        "",
        format_table(data),
        "",
        provenance(data),
        "",
    ] + rescored


def mcp_section(path: Path, data: dict[str, Any]) -> list[str]:
    from .mcp_servers import format_keywords, format_tables

    model = f"one query per server on {data['model']}, the whole toolset passed" if data.get("model") else "no model run"
    return [
        "## Real MCP servers' toolsets",
        "",
        "Each server's own `tools/list` (bench/fixtures/mcp/), passed whole: the tools ondevice accepts, the "
        f"keywords it relaxes (checked after decoding), and {model}; each call validated with `jsonschema` "
        "against the tool's schema as the server sent it.",
        "",
        format_tables(data),
        "",
        provenance(data),
        "",
        "The keywords each server's schemas use:",
        "",
        format_keywords(data),
        "",
    ]


def headline(found: dict[str, Any]) -> list[str]:
    """The README's short table: the numbers people choose a runtime by, each with its command."""
    rows = ["| what | number | measured with |", "|---|---|---|"]
    for _, b in found.get("bfcl", []):
        # the run's mode with the model's own no-call default, else the list mode it was run with
        gname = next((m for m in ("grammar", "grammar:list", "grammar:text", "grammar:threshold") if m in b["modes"]),
                     "grammar")
        g = b["modes"].get(gname, {})
        f = b["modes"].get("free", {})
        scope_mode = "" if gname == "grammar" else f", {gname}"
        cats = [c for c in b["categories"] if c in g]
        min_valid = min((g[c]["validity"] for c in cats), default=None)
        alias = b["model"]["alias"]
        scope = "full" if b.get("limit_per_category") is None else f"{b['limit_per_category']}/category"
        if b.get("partial"):
            scope += f", partial: {b['cases_done']}/{b['cases_planned']} cases"
        rows.append(f"| BFCL format validity, with grammar ({alias}, {scope}{scope_mode}) | {_pct(g.get('overall', {}).get('validity'))} "
                    f"(lowest category {_pct(min_valid)}) vs {_pct(f.get('overall', {}).get('validity'))} without | `{b['command']}` |")
        rows.append(f"| BFCL accuracy, with vs without grammar ({alias}, {scope}{scope_mode}) | {_pct(g.get('overall', {}).get('accuracy'))} "
                    f"vs {_pct(f.get('overall', {}).get('accuracy'))} | `{b['command']}` |")
    if "speed" in found:
        _, s = found["speed"]
        for label, r in s["results"].items():
            d = r["decode"]
            rows.append(f"| 1B {label}: decode tok/s grammar / free / llama.cpp | {_num(d['grammar_tok_s'])} / "
                        f"{_num(d['free_tok_s'])} / {_num(d['native_tok_s'])} (grammar/native {d['grammar_vs_native']}, "
                        f"grammar/free {d['grammar_vs_free']}) | `{s['command']}` |")
            warm = r["warm"][0]["wall_s"] if r.get("warm") else None
            rows.append(f"| 1B {label}: get_weather call, cold / warm (prefix cached) | {_num(r['cold'][0]['wall_s'], '{:.2f}')} s / "
                        f"{_num(warm, '{:.2f}')} s; load {_num(r['load_s'], '{:.2f}')} s; peak RSS {r['peak_rss_mib']:.0f} MiB | `{s['command']}` |")
            gw = r.get("get_weather") or {}
            if gw.get("ratio") is not None:
                rows.append(f"| 1B {label}: warm get_weather call under the grammar / free generation of as many tokens "
                            f"({gw.get('sampled_tokens')} sampled + {gw.get('forced_tokens')} forced) | "
                            f"{_num(gw['grammar_wall_s'], '{:.2f}')} s / {_num(gw['free_wall_s'], '{:.2f}')} s = {gw['ratio']} | `{s['command']}` |")
    if "quant" in found:
        _, q = found["quant"]
        for name in ("Q8_0", "Q4_K_M"):
            r = q["results"].get(name)
            if r:
                rows.append(f"| stand-in {name} vs F16: KL / top-1 agreement / size | {r['kl_mean']:.4f} nats / "
                            f"{_pct(r['top1_agreement'])} / {r['size_mib']} MiB | `{q['command']}` |")
    runs = [d for key, value in found.items() for _, d in (value if isinstance(value, list) else [value])]
    dates = sorted({d.get("date", "")[:10] for d in runs})
    machines = sorted({machine_line(d.get("machine", {})) for d in runs})
    return rows + ["", f"*Measured {', '.join(dates)} on {'; '.join(machines)}. Details: docs/benchmarks.md.*"]


# -------------------------------------------------------------------------------------------- run


def write_report(results_dir: Path, out_dir: Path, bfcl_choice: Optional[str] = None) -> dict[str, Path]:
    from ondevice.paths import atomic_path

    found = find_results(results_dir, bfcl_choice)
    if not found:
        raise FileNotFoundError(
            f"no results in {results_dir}: run `ondevice bench bfcl --limit 20`, `ondevice bench speed`, "
            "`ondevice bench quant` first"
        )
    img_dir = out_dir / IMG_DIR
    img_dir.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    def save_png(name: str, make: Any) -> str:
        final = img_dir / name
        with atomic_path(final) as tmp:
            make(tmp)
            tmp.chmod(0o644)
        written[name] = final
        return f"{IMG_DIR}/{name}"

    lines = [
        "# ondevice benchmarks",
        "",
        "Generated by `ondevice bench report` from the JSON results in `bench/results/`. Each table says when, "
        "where and with which command its numbers were measured.",
        "",
        "## Headline",
        "",
        *headline(found),
        "",
    ]
    for path, data in found.get("bfcl", []):
        img = save_png(f"bfcl_grammar_vs_free-{data['model']['alias']}.png", lambda p: plot_bfcl(data, p))
        lines += bfcl_section(path, data, img)
    if "speed" in found:
        lines += speed_section(*found["speed"])
    if "quant" in found or "speed" in found:
        q = found.get("quant", (None, None))[1]
        s = found.get("speed", (None, None))[1]
        img = save_png("quant_size_speed_quality.png", lambda p: plot_quant(q, s, p))
        if "quant" in found:
            lines += quant_section(found["quant"][0], found["quant"][1], img)
        elif img:
            lines += [f"![size vs speed per quant type]({img})", ""]
    if "schemas" in found:
        lines += schemas_section(*found["schemas"])
    if "mcp" in found:
        lines += mcp_section(*found["mcp"])
    for i, (path, data) in enumerate(found.get("nocall", [])):
        lines += nocall_section(path, data, heading=i == 0)
    report = out_dir / REPORT_NAME
    with atomic_path(report) as tmp:
        tmp.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
        tmp.chmod(0o644)
    written[REPORT_NAME] = report
    head = out_dir / HEADLINE_NAME
    with atomic_path(head) as tmp:
        tmp.write_text("\n".join(headline(found)) + "\n", encoding="utf-8")
        tmp.chmod(0o644)
    written[HEADLINE_NAME] = head
    return written


def run(args: Any) -> int:
    from . import RESULTS_DIR
    from ondevice.paths import REPO_ROOT

    from .common import log

    results_dir = Path(args.results) if args.results else RESULTS_DIR
    out_dir = Path(args.out) if args.out else REPO_ROOT / "docs"
    written = write_report(results_dir, out_dir, args.bfcl)
    for name, path in written.items():
        log(f"[report] wrote {path}")
    print(written[REPORT_NAME].read_text())
    return 0
