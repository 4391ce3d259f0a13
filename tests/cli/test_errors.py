"""Every bad input ends in one line `ondevice: error: ...` and exit 2; bugs in one line and exit 1.

Most cases run the CLI in-process (`ondevice.cli.main`), failing before a model loads; the ones about
argv bytes, stdin and stdout run it as a user does, in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from ondevice import __version__
from ondevice.cli import main

from ..common import EXAMPLES, REPO, nest_objects

STANDIN_NOTE = "ondevice: using the stand-in"
SIMPLE_TOOLS = str(EXAMPLES / "simple" / "tools.json")


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if not line.startswith(STANDIN_NOTE)]


def assert_one_line_error(status: int, stderr: str, message: str, code: int = 2) -> None:
    lines = error_lines(stderr)
    assert status == code, stderr
    assert len(lines) == 1, stderr
    prefix = "ondevice: error: " if code == 2 else "ondevice: internal error: "
    assert lines[0].startswith(prefix), stderr
    assert message in lines[0], stderr
    assert "Traceback" not in stderr


def run_main(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def ondevice(*args: str | bytes, stdin: bytes | None = None, stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-m", "ondevice", *args], input=stdin, stdout=stdout,
                          stderr=subprocess.PIPE, env=env, cwd=REPO, timeout=600)


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


# --- the tools file -------------------------------------------------------------------------------
@pytest.mark.parametrize("content, message", [
    (b'[{"name": "f\xff"}]', "is not UTF-8 text: byte 0xff at offset 12"),
    (nested(1000).encode(), "nests too deeply to read"),
    (nested(150).encode(), "tool #0: its definition nests 149 levels deep, the limit is 64 (setting max_schema_depth, at most 100)"),
    (b'[{"name": "f", "parameters": {"type": "object", "properties": {"x": {"maximum": NaN}}}}]', "NaN is not a JSON number"),
    (b'[{"name": "\\ud800"}]', "[0].name holds text that is not valid UTF-8"),
    (b"[" + b"1" * 5000 + b"]", "is not valid JSON"),
])
@pytest.mark.nomodel
def test_bad_tools_files(tmp_path, capsys, content, message):
    path = tmp_path / "tools.json"
    path.write_bytes(content)
    status, _, err = run_main(capsys, "call", "hi", "--tools", str(path))
    assert_one_line_error(status, err, message)


# --- hostile input (issue 27): the server's three, through the CLI; refused before a model loads ------
def write(tmp_path, name: str, content: str | bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return str(path)


@pytest.mark.parametrize("command, content, message", [
    ("call", nested(10_000), "tools.json nests too deeply to read (the limit is 512 levels)"),
    ("call", json.dumps([{"name": "deep", "parameters": nest_objects(200)}]),
     "tool 'deep': its definition nests 402 levels deep, the limit is 64 (setting max_schema_depth"),
    ("call", '[{"name": "f", "description": "\\ud800"}]',
     "tools.json: [0].description holds text that is not valid UTF-8"),
    ("call", '[{"name": "f", "parameters": {"type": "object", "properties": {"\\udc00": {}}}}]',
     "[0].parameters.properties holds text that is not valid UTF-8"),
    ("json", nested(10_000), "schema.json nests too deeply to read"),
    ("json", json.dumps(nest_objects(200)),
     "response format 'schema': its schema nests 401 levels deep, the limit is 64 (setting max_schema_depth"),
    ("json", '{"type": "string", "description": "\\ud800"}',
     "schema.json: description holds text that is not valid UTF-8"),
])
@pytest.mark.nomodel
def test_hostile_files_are_one_line_before_the_model_loads(tmp_path, capsys, command, content, message):
    option, name = ("--tools", "tools.json") if command == "call" else ("--schema", "schema.json")
    status, _, err = run_main(capsys, command, "hi", option, write(tmp_path, name, content))
    assert_one_line_error(status, err, message)
    assert STANDIN_NOTE not in err  # no model was loaded


@pytest.mark.nomodel
def test_hostile_query_is_one_line(capsys):
    status, _, err = run_main(capsys, "call", "weather in \ud800", "--tools", SIMPLE_TOOLS)
    assert_one_line_error(status, err, "the query is not valid UTF-8 text (undecodable '\\ud800' at character 11)")


# --- settings, checked before the model loads -------------------------------------------------------
@pytest.mark.parametrize("option, value, message", [
    ("--seed", "-1", "setting seed: expected an integer from 0 to 4294967295, got -1"),
    ("--seed", str(2**32), "setting seed"),
    ("--temperature", "inf", "setting temperature: expected a number from 0 to 100.0 (0 is greedy), got inf"),
    ("--temperature", "nan", "setting temperature"),
    ("--n-ctx", str(2**32), "setting n_ctx: expected an integer from 64 to 1048576"),
    ("--n-ctx", str(2**32 + 64), "setting n_ctx"),
    ("--threads", "0", "setting n_threads"),
    ("--threads", "100000", "setting n_threads"),
    ("--max-tokens", str(2**40), "setting max_tokens"),
    ("--n-gpu-layers", "-2", "setting n_gpu_layers"),
    ("--seed", "1.5", "argument --seed: invalid int value: '1.5'"),
])
@pytest.mark.nomodel
def test_bad_settings(capsys, option, value, message):
    status, _, err = run_main(capsys, "call", "hi", option, value)
    assert_one_line_error(status, err, message)


def test_n_ctx_beyond_the_models_training(capsys):
    status, _, err = run_main(capsys, "call", "hi", "--n-ctx", "16384")
    assert_one_line_error(status, err, "n_ctx 16384 is more than")
    assert "trained on (8192 tokens): pass --n-ctx 8192 or less" in err


@pytest.mark.nomodel
def test_prefix_cache_dir_that_is_a_file(tmp_path, capsys):
    target = tmp_path / "notadir"
    target.write_text("mine")
    status, _, err = run_main(capsys, "call", "hi", "--prefix-cache-dir", str(target))
    assert_one_line_error(status, err, "is a file, not a directory: pass a directory")
    assert target.read_text() == "mine"


# --- chat templates that fail on their own --------------------------------------------------------
@pytest.mark.parametrize("template, message", [
    ("{{ 1/0 }}", "(ZeroDivisionError: division by zero)"),
    ("{{ range(10**9)|length }}", "loops over more than 100000 range() items"),
    ('{{ "{0}{1}".format("a") }}', "(IndexError: "),
    ('{{ "x" * 10**9 }}', "a repeated string or list of 1 x 1000000000 items"),
    ("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}", "range() items"),
    ("{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}", "RecursionError"),
    ("{{ raise_exception('no system prompt allowed') }}", "refused the messages: no system prompt allowed"),
    ("{% if %}", "does not compile"),
])
def test_chat_templates_that_raise(tmp_path, capsys, template, message):
    path = tmp_path / "t.jinja"
    path.write_text(template)
    status, _, err = run_main(capsys, "call", "hi", "--chat-template", str(path))
    assert_one_line_error(status, err, message)


@pytest.mark.nomodel
def test_chat_template_file_not_utf8(tmp_path, capsys):
    path = tmp_path / "t.jinja"
    path.write_bytes(b"{{ bos_token }}\xc3(")
    status, _, err = run_main(capsys, "call", "hi", "--chat-template", str(path))
    assert_one_line_error(status, err, "is not UTF-8 text: byte 0xc3 at offset 15")


# --- schemas that cannot be satisfied: refused before the model loads ------------------------------
def tools_file(tmp_path, parameters) -> str:
    path = tmp_path / "tools.json"
    path.write_text(json.dumps([{"name": "f", "description": "d", "parameters": parameters}]))
    return str(path)


@pytest.mark.parametrize("parameters, message", [
    ({"type": "object", "properties": {"x": {"$ref": "#/$defs/y"}}, "$defs": {"y": {"$ref": "#/$defs/y"}}},
     "tool 'f', at parameters.$defs.y: no finite value can satisfy this schema: it needs #/$defs/y"),
    ({"type": "object", "properties": {"x": {"$ref": "#/$defs/a"}}, "required": ["x"],
      "$defs": {"a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/a"}}, "required": ["b"]}}},
     "tool 'f', at parameters.$defs.a: no finite value"),
    ({"type": "object", "properties": {"x": {"$ref": "#/$defs/z"}}, "$defs": {"y": {"type": "string"}}},
     "tool 'f', at parameters.properties.x: $ref '#/$defs/z' points to nothing: #/$defs has no 'z' (it has: y)"),
    ({"type": "object", "properties": {"x": {"type": "string", "pattern": "(("}}},
     "tool 'f', at parameters[\"properties\"][\"x\"][\"pattern\"]: not a valid JSON Schema: '((' is not a 'regex'"),
])
@pytest.mark.nomodel
def test_unsatisfiable_schemas_are_refused_at_compile_time(tmp_path, capsys, parameters, message):
    status, _, err = run_main(capsys, "call", "hi", "--tools", tools_file(tmp_path, parameters))
    assert_one_line_error(status, err, message)
    assert STANDIN_NOTE not in err  # no model was loaded
    assert "call_0" not in err and "x-guidance" not in err  # no grammar dump


@pytest.mark.nomodel
def test_verbose_shows_the_grammar_listing(tmp_path, capsys):
    # overlapping patternProperties: valid JSON Schema (the judge reads it), llguidance's compiler refuses it
    path = tools_file(tmp_path, {"type": "object", "properties": {"x": {"type": "object", "patternProperties": {
        "^a": {"type": "string"}, "^ab": {"type": "integer"}}}}})
    status, _, err = run_main(capsys, "--verbose", "call", "hi", "--tools", path)
    assert status == 2 and err.startswith("ondevice: error: tool 'f'") and "call_0: %json" in err


def test_recursive_schemas_with_a_way_out_still_work(tmp_path, capsys):
    tree = {"type": "object", "properties": {"root": {"$ref": "#/$defs/node"}}, "required": ["root"],
            "$defs": {"node": {"type": "object", "properties": {"kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}}
    status, out, err = run_main(capsys, "call", "make a tree", "--tools", tools_file(tmp_path, tree), "--max-tokens", "40")
    assert status == 0, err
    assert isinstance(json.loads(out), list)


# --- conventions ------------------------------------------------------------------------------------
@pytest.mark.nomodel
def test_version(capsys):
    status, out, _ = run_main(capsys, "--version")
    assert status == 0 and out.strip() == f"ondevice {__version__}"


@pytest.mark.nomodel
def test_a_bug_is_one_line_asking_for_a_report(capsys, monkeypatch):
    import ondevice.cli.models as models

    monkeypatch.setattr(models, "manifests", lambda: 1 / 0)  # stands for any bug in ondevice
    status, _, err = run_main(capsys, "models")
    assert_one_line_error(status, err, "ZeroDivisionError: division by zero -- this is a bug, please report it", code=1)
    status, _, err = run_main(capsys, "--verbose", "models")
    assert status == 1 and "Traceback" in err


# --- as a user runs it: argv bytes, stdin, stdout ---------------------------------------------------
@pytest.mark.nomodel
def test_query_not_utf8_in_argv():
    r = ondevice("call", b"weather in \xff\xfe Paris", "--tools", SIMPLE_TOOLS)
    assert_one_line_error(r.returncode, r.stderr.decode(), "the query is not valid UTF-8 text")


def test_chat_line_not_utf8():
    r = ondevice("chat", "--tools", SIMPLE_TOOLS, stdin=b"weather in \xff Paris\n")
    assert_one_line_error(r.returncode, r.stderr.decode(), "input line 1 is not UTF-8 text (byte 0xff at offset 11)")


def test_stdout_that_cannot_be_written():
    with open("/dev/full", "wb") as full:
        r = ondevice("call", "What's the weather like in Paris?", "--tools", SIMPLE_TOOLS,
                     stdout=full)
    assert_one_line_error(r.returncode, r.stderr.decode(), "a write failed: No space left on device")


@pytest.mark.nomodel
def test_a_closed_pipe_is_not_an_error():
    proc = subprocess.Popen([sys.executable, "-m", "ondevice", "models"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
    proc.stdout.close()  # the reader is gone before anything is written
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and err == ""
