"""End to end on the stand-in, with the real runtime and llama.cpp (tiny runs: seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice.cli import main


@pytest.fixture(scope="module")
def standin():
    from ondevice.models.assets import standin_gguf_path
    from ondevice.errors import AssetError

    try:
        return standin_gguf_path()
    except AssetError as exc:
        pytest.skip(str(exc))


@pytest.mark.nomodel
def test_bench_help_lists_the_benchmarks_with_examples(capsys):
    assert main(["bench", "bfcl", "--help"]) == 0  # the CLI turns argparse's exit into a return code
    text = capsys.readouterr().out
    assert "--limit N" in text and "--seed" in text and "--model" in text and "--out" in text
    assert "examples:" in text and "ondevice bench bfcl --limit 20" in text
    for sub in ("speed", "quant", "report"):
        assert main(["bench", sub, "--help"]) == 0
        assert "examples:" in capsys.readouterr().out


def test_bfcl_tiny_run_with_and_without_grammar(bfcl, standin, tmp_path: Path, capsys):
    out = tmp_path / "bfcl.json"
    rc = main([
        "bench", "bfcl", "--limit", "1", "--categories", "simple_python,irrelevance", "--out", str(out),
        "--max-tokens", "64", "--free-max-tokens", "16", "--threads", "1", "--n-ctx", "2048",
    ])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert summary["categories"] == ["simple_python", "irrelevance"]
    assert summary["limit_per_category"] == 1 and summary["command"].startswith("ondevice bench bfcl")
    for mode in ("grammar", "free"):
        assert summary["modes"][mode]["overall"]["n"] == 2
        assert set(summary["modes"][mode]) == {"simple_python", "irrelevance", "overall"}
    # the grammar's promise, measured: every output parses and is schema-valid
    assert summary["modes"]["grammar"]["overall"]["validity"] == 1.0
    raw = [json.loads(line) for line in (tmp_path / "raw" / "bfcl.grammar.jsonl").read_text().splitlines()]
    assert len(raw) == 2 and all(r["text"].startswith("<tool_call>[") for r in raw)
    assert "| simple_python | 1 |" in capsys.readouterr().out


def test_native_loop_decodes_the_same_tokens_as_our_unconstrained_path(standin):
    # The native reference must be the same computation as ours (same file, prompt, threads), or the
    # speed ratio compares different work: greedy decoding must agree token for token.
    from ondevice_bench.native import native_decode
    from ondevice import Settings, ToolCaller
    from ondevice.formats.prompt import prepare_messages

    settings = Settings(n_ctx=1024, n_threads=1, constrained=False, max_tokens=8)
    tools = [{"name": "get_weather", "description": "Get the weather",
              "parameters": {"type": "object", "properties": {"location": {"type": "string"}}, "required": ["location"]}}]
    query = "What's the weather in Paris?"
    native = None
    with ToolCaller.load(str(standin), settings) as caller:
        prompt = caller.model.tokenize(caller.render(prepare_messages(query, tools)))
        res = caller.call(query, tools)
        native = native_decode(standin, prompt, 8, n_ctx=1024, threads=1, repeats=1)
        native_text = caller.model.detokenize(native["first_tokens"]).decode("utf-8", errors="replace")
    assert native["decode_tok_s"] > 0 and native["llama_perf_eval_tok_s"] > 0
    assert res.text and native_text.startswith(res.text[: min(len(res.text), 12)]), (res.text, native_text)
