"""The peers benchmark: each engine (ondevice, llama-cpp-python's chatml-function-calling, the model's
template with a lenient parser) really runs on the stand-in on two BFCL cases, so the benchmark cannot
rot; and the lenient parser reads what llama-server --jinja / Ollama would read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice.cli import main
from ondevice_bench.peers import ENGINES, lenient_calls, percentile


@pytest.mark.nomodel
def test_lenient_parser_reads_tags_bare_json_and_fences():
    assert lenient_calls('<tool_call>\n{"name": "f", "arguments": {"a": 1}}\n</tool_call>') == [
        {"name": "f", "arguments": {"a": 1}}]
    two = '<tool_call>{"name": "f", "arguments": {}}</tool_call>\n<tool_call>{"name": "g", "arguments": "{\\"x\\": 2}"}'
    assert lenient_calls(two) == [{"name": "f", "arguments": {}}, {"name": "g", "arguments": {"x": 2}}]  # last unclosed
    assert lenient_calls('[{"name": "f", "parameters": {"a": 1}}]') == [{"name": "f", "arguments": {"a": 1}}]
    assert lenient_calls('```json\n{"name": "f", "arguments": {}}\n```') == [{"name": "f", "arguments": {}}]
    assert lenient_calls("The capital of France is Paris.") == []
    assert lenient_calls("<tool_call>{not json</tool_call>") is None  # a broken call, not a refusal
    assert lenient_calls('<tool_call>{"arguments": {}}</tool_call>') is None


@pytest.mark.nomodel
def test_percentile_interpolates():
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile([5.0], 0.95) == 5.0 and percentile([], 0.5) is None


@pytest.fixture(scope="module")
def standin():
    from ondevice.models.assets import standin_gguf_path

    return standin_gguf_path()


def test_every_engine_runs_two_cases_on_the_stand_in(bfcl, standin, tmp_path: Path, capsys):
    out = tmp_path / "peers.json"
    rc = main(["bench", "peers", "--model", "smollm2-135m-instruct", "--limit", "1",
               "--categories", "simple_python,irrelevance", "--out", str(out), "--max-tokens", "48",
               "--threads", "2", "--n-ctx", "2048"])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert list(summary["results"]) == list(ENGINES) and summary["cases_done"] == 2
    for engine in ENGINES:
        overall = summary["results"][engine]["overall"]
        # each adapter answered both (an answer over the token budget is an answer, a crash is not)
        assert overall["n"] == 2 and overall["runtime_errors"] == 0, engine
        assert overall["latency_p50_s"] > 0 and set(overall) >= {"extra_calls", "repeated_calls", "latency_p95_s"}
        raw = [json.loads(x) for x in (tmp_path / "raw" / f"peers.{engine}.jsonl").read_text().splitlines()]
        assert [r["category"] for r in raw] == ["simple_python", "irrelevance"]
    assert summary["results"]["ondevice"]["overall"]["validity"] == 1.0  # the grammar's promise
    assert summary["engines"]["llama-cpp-chatml"]["chat_format"] == "chatml-function-calling"
    assert set(summary["compare"]) == {"llama-cpp-chatml", "template-lenient"}
    assert summary["estimate"]["20"]["sample_hours"] > 0
    text = capsys.readouterr().out
    assert "| llama-cpp-chatml |" in text and "exact McNemar" in text


def test_bfcl_engine_option_runs_a_peer_alone(bfcl, standin, tmp_path: Path):
    out = tmp_path / "one.json"
    rc = main(["bench", "bfcl", "--engine", "template-lenient", "--model", "smollm2-135m-instruct", "--limit", "2",
               "--categories", "simple_python", "--out", str(out), "--max-tokens", "48", "--threads", "2",
               "--n-ctx", "2048"])
    assert rc == 0
    summary = json.loads(out.read_text())
    assert list(summary["results"]) == ["template-lenient"]
    assert summary["results"]["template-lenient"]["overall"]["n"] == 2
