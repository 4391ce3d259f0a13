"""The `ondevice` command, run as a user runs it (a subprocess, a temp ONDEVICE_HOME); help and bad
input in this process (`main`), where a subprocess adds nothing but its start-up."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

from ondevice.cli import main

from ..common import EXAMPLES, PINNED_DATE, REPO


def ondevice(*args: str, stdin: str | None = None, home=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    if home is not None:
        env["ONDEVICE_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "ondevice", *args], input=stdin, capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=600)


def test_call_prints_calls_as_json(ondevice_home):
    r = ondevice("call", "What's the weather like in New York in fahrenheit?",
                 "--tools", str(EXAMPLES / "simple" / "tools.json"), "--date-string", PINNED_DATE, home=ondevice_home)
    assert r.returncode == 0, r.stderr
    calls = json.loads(r.stdout)
    assert calls and calls[0]["name"] == "get_weather"
    assert "using the stand-in smollm2-135m-instruct" in r.stderr and "ondevice pull" in r.stderr


def test_call_json_result_and_no_tools(ondevice_home):
    r = ondevice("call", "Hello", "--json", home=ondevice_home)
    assert r.returncode == 0, r.stderr
    result = json.loads(r.stdout)
    assert result["calls"] == [] and result["text"] == "<tool_call>[]</tool_call>"
    assert set(result["timings"]) >= {"prompt_tokens", "prompt_eval_s", "decode_s", "load_s"}


def test_one_shot_calls_share_the_tools_prefix_on_disk_by_default(tmp_path):
    args = ["call", "What's the weather like in Oslo?", "--tools", str(EXAMPLES / "simple" / "tools.json"),
            "--date-string", PINNED_DATE, "--json", "--max-tokens", "4"]
    first = json.loads(ondevice(*args, home=tmp_path).stdout)
    assert first["timings"]["prompt_reused"] == 0
    assert list((tmp_path / "prefix-cache").glob("*.kv"))
    second = json.loads(ondevice(*args, home=tmp_path).stdout)
    assert second["timings"]["prompt_reused"] > 0  # a new process, the tools prefix restored from disk
    assert second["text"] == first["text"]
    off = json.loads(ondevice(*args, "--no-prefix-cache", home=tmp_path).stdout)
    assert off["timings"]["prompt_reused"] == 0
    other = json.loads(ondevice(*args, "--n-ctx", "2048", home=tmp_path).stdout)
    assert other["timings"]["prompt_reused"] == 0  # another setting: never the other setting's state


def test_call_with_no_call_text_prints_the_sentence_on_stderr(ondevice_home):
    tools, case = EXAMPLES / "wrong_tool" / "tools.json", json.loads((EXAMPLES / "wrong_tool" / "case.json").read_text())
    r = ondevice("call", case["queries"][0], "--tools", str(tools), "--no-call", "text", "--max-tokens", "40",
                 "--date-string", PINNED_DATE, home=ondevice_home)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == [] and "ondevice: no call; the model answered: " in r.stderr


def test_chat_is_multi_turn(ondevice_home):
    r = ondevice("chat", "--tools", str(EXAMPLES / "multi_turn" / "tools.json"), "--date-string", PINNED_DATE,
                 stdin="What's the weather like in Madrid in celsius?\nAnd in Edinburgh in celsius?\n", home=ondevice_home)
    assert r.returncode == 0, r.stderr
    turns = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(turns) == 2 and all(isinstance(t, list) for t in turns)


@pytest.mark.nomodel
def test_models_lists_the_stand_in(ondevice_home):
    r = ondevice("models", "--json", home=ondevice_home)
    rows = {row["alias"]: row for row in json.loads(r.stdout)}
    assert rows["smollm2-135m-instruct"]["local_files"]
    assert rows["llama-3.2-1b-apigen-fc"]["local_files"] == []


def test_call_tool_choice_required_makes_a_call(ondevice_home):
    tools, case = EXAMPLES / "wrong_tool" / "tools.json", json.loads((EXAMPLES / "wrong_tool" / "case.json").read_text())
    args = ["call", case["queries"][0], "--tools", str(tools), "--no-call", "text", "--max-tokens", "40",
            "--date-string", PINNED_DATE]
    r = ondevice(*args, "--tool-choice", "required", "--no-parallel-tool-calls", home=ondevice_home)
    assert r.returncode == 0, r.stderr
    calls = json.loads(r.stdout)
    assert [c["name"] for c in calls] == ["cut_number"]  # where, unforced, it answers in words (above)
    none = ondevice(*args, "--tool-choice", "none", home=ondevice_home)
    assert none.returncode == 0 and json.loads(none.stdout) == [], none.stderr


@pytest.mark.nomodel
@pytest.mark.parametrize("command", [[], ["call"], ["chat"], ["models"], ["doctor"]])
def test_help_has_examples(command, capsys):
    assert main([*command, "--help"]) == 0
    assert "examples:" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["call", "", "--tools", "examples/simple/tools.json"], "the query is empty"),
    (["call", "hi", "--tools", "nope.json"], "tools file not found: nope.json"),
    (["call", "hi", "--tools", "pyproject.toml"], "pyproject.toml is not valid JSON: Expecting value at line 1"),
    (["call", "hi", "--model", "no-such-model"], "unknown model 'no-such-model'"),
    (["call", "hi", "--max-tokens", "0"], "setting max_tokens: expected an integer from 1 to 2147483647, got 0"),
    (["call", "hi", "--tools", "-"], "missing 'name'"),
    (["call", "hi", "--chat-template", "nope.jinja"], "chat template file not found: nope.jinja"),
    (["call", "hi", "--tools", "examples/simple/tools.json", "--tool-choice", "get_time"],
     "--tool-choice: expected auto, required, none or a tool name among ['get_weather'"),
])
@pytest.mark.nomodel
def test_bad_input_exits_2_with_a_message(args, message, capsys, monkeypatch):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b'[{"description": "nameless"}]')))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_a_context_smaller_than_a_batch_does_not_abort(ondevice_home):
    # llama.cpp clamps n_batch to a small n_ctx (360 here, the context itself padded to 512): a batch
    # of the configured 512 tokens used to abort the process inside llama_decode.
    r = ondevice("call", "What is the weather in Paris?", "--tools", str(EXAMPLES / "simple" / "tools.json"),
                 "--n-ctx", "360", "--max-tokens", "8", home=ondevice_home)
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout), list)


def test_call_warns_once_about_relaxed_keywords(ondevice_home, tmp_path):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([{"name": "fetch", "description": "Fetch a URL", "parameters": {
        "type": "object", "properties": {"url": {"type": "string"}, "headers": {
            "type": "object", "propertyNames": {"pattern": "^x_", "maxLength": 9}}}, "required": ["url"]}}]))
    r = ondevice("call", "Fetch https://example.com", "--tools", str(tools), "--max-tokens", "48",
                 "--date-string", PINNED_DATE, home=ondevice_home)
    assert r.returncode == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if line.startswith("ondevice: warning:")]
    assert warnings == ["ondevice: warning: the grammar does not enforce these keywords; each call is checked "
                        "against them after decoding (mark a tool strict: true to refuse them instead): "
                        "fetch:parameters.properties.headers:propertyNames"]
    json.loads(r.stdout)
