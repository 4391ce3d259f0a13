"""Fuzzing the CLI's inputs: whatever the tools file, the query or a numeric option holds, `ondevice call`
ends with exit 0 or 2 (one line), never 1 (a bug) or a traceback. In-process through ondevice.cli.main;
most cases fail before a model loads. ONDEVICE_PROPERTY_EXAMPLES sets the number of cases (20; 300 before a release)."""

from __future__ import annotations

import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ondevice.cli import main

pytestmark = pytest.mark.property
EXAMPLES = int(os.environ.get("ONDEVICE_PROPERTY_EXAMPLES", "20"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=12,
)
tool_like = st.fixed_dictionaries(
    {"name": st.text(min_size=1, max_size=8), "parameters": st.fixed_dictionaries(
        {"type": st.sampled_from(["object", "dict", "string"]),
         "properties": st.dictionaries(st.text(min_size=1, max_size=5), json_values, max_size=3)})},
    optional={"description": st.text(max_size=10), "$defs": json_values},
)
tools_files = st.one_of(
    st.binary(max_size=300),
    st.integers(1, 5000).map(lambda d: ("[" * d + "]" * d).encode()),
    st.integers(1, 3000).map(lambda d: ('{"a":' * d + "1" + "}" * d).encode()),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(tool_like, max_size=2).map(lambda v: json.dumps(v).encode()),
)
queries = st.text(st.characters(min_codepoint=0, max_codepoint=0x10FFFF, exclude_categories=()), max_size=40)
numbers = st.one_of(st.integers(), st.integers(-3, 10_000), st.floats(), st.sampled_from(["nan", "inf", "-inf", "1e400", "0x10", "1_000"]))
NUMERIC_OPTIONS = ["--n-ctx", "--threads", "--n-gpu-layers", "--temperature", "--seed", "--max-tokens"]


def run(capsys, argv: list[str]) -> None:
    status = main(argv)
    out, err = capsys.readouterr()
    assert status in (0, 2), err
    assert "Traceback" not in err and "internal error" not in err, err
    if status == 2:
        assert len([l for l in err.splitlines() if l.startswith("ondevice: error:")]) == 1, err


@FUZZ
@given(content=tools_files, query=queries)
def test_tools_file_and_query(tmp_path, capsys, content, query):
    path = tmp_path / "tools.json"
    path.write_bytes(content)
    run(capsys, ["call", query, "--tools", str(path), "--max-tokens", "8"])


@FUZZ
@given(option=st.sampled_from(NUMERIC_OPTIONS), value=numbers)
def test_numeric_options(capsys, option, value):
    run(capsys, ["call", "What is the weather in Paris?", f"{option}={value}", "--max-tokens", "8"]
        if option != "--max-tokens" else ["call", "What is the weather in Paris?", f"{option}={value}"])
