"""The report writer: markdown + PNG plots from small result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice_bench import report
from ondevice_bench.bfcl import CaseResult, summarize

pytestmark = pytest.mark.nomodel

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MACHINE = {"cpu": "Test CPU", "cores": 2, "ram_gib": 24.0, "os": "Linux 6", "llama_cpp_python": "0.3.36"}


def _bfcl_result() -> dict:
    rows = [
        CaseResult("simple_python_0", "simple_python", "grammar", True, True, calls=[{"name": "f", "arguments": {}}]),
        CaseResult("simple_python_1", "simple_python", "grammar", False, True, error_type="value_error",
                   calls=[{"name": "f", "arguments": {"x": 1}}]),
        CaseResult("irrelevance_0", "irrelevance", "grammar", False, True, error_type="irrelevance_error:decoder_success"),
        CaseResult("simple_python_0", "simple_python", "free", False, False, error_type="ast_decoder:decoder_failed"),
        CaseResult("simple_python_1", "simple_python", "free", True, True),
        CaseResult("irrelevance_0", "irrelevance", "free", True, False),
    ]
    cats = ["simple_python", "irrelevance"]
    return {
        "benchmark": "bfcl", "date": "2026-11-23T20:00:00Z", "command": "ondevice bench bfcl --limit 2",
        "machine": MACHINE, "model": {"alias": "smollm2-135m-instruct", "file": "x.gguf", "size_mib": 98.0},
        "bfcl_eval": "2026.3.23", "categories": cats, "limit_per_category": 2, "seed": 0,
        "settings": {"grammar": {"max_tokens": 512, "n_ctx": 8192, "threads": 1},
                     "free": {"max_tokens": 256, "n_ctx": 8192, "threads": 1}},
        "modes": {m: summarize([r for r in rows if r.mode == m], cats) for m in ("grammar", "free")},
    }


def _speed_result() -> dict:
    def one(size, g, f, n):
        return {
            "size_mib": size, "load_s": 0.5, "cold_prompt_tok_s": 120.0, "peak_rss_mib": 1500.0,
            "cold": [{"example": "simple", "wall_s": 3.1, "prompt_tok_s": 120.0}],
            "warm": [{"example": "simple", "wall_s": 0.4}],
            "get_weather": {"grammar_wall_s": 0.5, "free_wall_s": 1.0, "ratio": 0.5, "output_tokens": 20,
                            "forced_tokens": 15, "sampled_tokens": 5, "finish_reason": "stop", "truncated": False},
            "decode": {"grammar_tok_s": g, "free_tok_s": f, "native_tok_s": n, "native_llama_perf_tok_s": n,
                       "grammar_vs_free": round(g / f, 3), "grammar_vs_native": round(g / n, 3)},
        }
    return {
        "benchmark": "speed", "date": "2026-11-23T20:10:00Z", "command": "ondevice bench speed", "machine": MACHINE,
        "settings": {"decode_tokens": 128, "repeats": 3}, "native_method": "raw llama_decode loop",
        "results": {"Q4_K_M": one(770.0, 19.0, 19.5, 20.0), "Q8_0": one(1260.0, 12.0, 12.2, 12.4)},
    }


def _quant_result() -> dict:
    rows = {
        "F16": {"size_mib": 258.0, "decode_tok_s": 30.0, "kl_mean": 0.0, "kl_p99": 0.0, "top1_agreement": 1.0},
        "Q8_0": {"size_mib": 138.0, "decode_tok_s": 45.0, "kl_mean": 0.001, "kl_p99": 0.01, "top1_agreement": 0.99},
        "Q4_K_M": {"size_mib": 100.0, "decode_tok_s": 55.0, "kl_mean": 0.05, "kl_p99": 0.4, "top1_agreement": 0.93},
    }
    return {
        "benchmark": "quant", "date": "2026-11-23T20:20:00Z", "command": "ondevice bench quant", "machine": MACHINE,
        "model": "stand-in rebuilt at full precision", "texts": ["a", "b"], "positions": 900, "results": rows,
    }


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    d = tmp_path / "results"
    d.mkdir()
    (d / "bfcl-smollm2-135m-instruct-limit2-seed0.json").write_text(json.dumps(_bfcl_result()))
    (d / "speed-1b.json").write_text(json.dumps(_speed_result()))
    (d / "quant-standin.json").write_text(json.dumps(_quant_result()))
    return d


def test_report_writes_markdown_and_pngs(results_dir: Path, tmp_path: Path):
    out = tmp_path / "docs"
    written = report.write_report(results_dir, out)
    md = (out / "benchmarks.md").read_text()
    for png in ("bfcl_grammar_vs_free-smollm2-135m-instruct.png", "quant_size_speed_quality.png"):
        data = (out / "img" / png).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000, png
        assert f"img/{png}" in md
    # the BFCL table: per category, both modes, accuracy [95% interval], validity, false refusals
    assert "| simple_python | 2 | 50.0% [9-91] | 100.0% | 0 false | 50.0% [9-91] | 50.0% | 2 false |" in md
    assert "| irrelevance | 1 | 0.0% [0-79] | 100.0% | (wanted) | 100.0% [21-100] | 0.0% | (wanted) |" in md
    # every table says how to reproduce it
    for command in ("ondevice bench bfcl --limit 2", "ondevice bench speed", "ondevice bench quant"):
        assert f"`{command}`" in md
    assert "Test CPU, 2 cores" in md
    head = (out / "README_headline.md").read_text()
    assert "ondevice bench speed" in head and "2026-11-23" in head
    assert set(written) >= {"benchmarks.md", "README_headline.md"}
    assert not list(out.rglob("*.part"))


def test_report_without_results_says_what_to_run(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="ondevice bench bfcl"):
        report.write_report(tmp_path, tmp_path / "docs")


def test_report_prefers_the_full_bfcl_run(results_dir: Path, tmp_path: Path):
    full = _bfcl_result()
    full["limit_per_category"] = None
    full["command"] = "ondevice bench bfcl"
    (results_dir / "bfcl-smollm2-135m-instruct-full.json").write_text(json.dumps(full))
    report.write_report(results_dir, tmp_path / "docs")
    md = (tmp_path / "docs" / "benchmarks.md").read_text()
    assert "`ondevice bench bfcl`" in md and "the full set" in md
