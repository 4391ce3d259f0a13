"""Properties on random tool schemas: every output is valid (random seeds, high temperatures), and
greedy decoding with fast-forward equals step-by-step masked decoding.

Each case really decodes on the stand-in under the grammar, then checks the text with the parse layer
and the arguments with the `jsonschema` library. ONDEVICE_PROPERTY_EXAMPLES sets the number of cases
(20 in the default run; 300 in `-m property` before a release, and in `ondevice bench property`).
"""

from __future__ import annotations

import json
import os
import string

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ondevice import Settings, ToolCaller
from ondevice.formats import get_format
from ondevice.formats.tags import CLOSE, OPEN
from ondevice.settings import NATIVE
from ondevice.schema.tools import normalize_tools

from ..common import PINNED_DATE

pytestmark = pytest.mark.property
EXAMPLES = int(os.environ.get("ONDEVICE_PROPERTY_EXAMPLES", "20"))
NAMES = st.text(string.ascii_lowercase + "_", min_size=1, max_size=10).filter(lambda s: s[0] != "_")
SCALARS = st.sampled_from(["string", "integer", "number", "boolean", "null", "float", "any"])


@st.composite
def schemas(draw, depth: int = 0):
    kind = draw(st.sampled_from(
        ["scalar", "scalar", "enum", "const", "array", "object", "anyof", "typelist", "bounded_string"]
        if depth < 2 else ["scalar", "enum", "bounded_string"]))
    if kind == "scalar":
        return {"type": draw(SCALARS)}
    if kind == "enum":
        return {"type": "string", "enum": draw(st.lists(st.text(string.ascii_letters + " ", min_size=1, max_size=8), min_size=1, max_size=4, unique=True))}
    if kind == "const":
        return {"const": draw(st.one_of(st.integers(-5, 5), st.sampled_from(["a", "b c"]), st.booleans()))}
    if kind == "bounded_string":
        lo = draw(st.integers(0, 3))
        return {"type": "string", "minLength": lo, "maxLength": lo + draw(st.integers(0, 6))}
    if kind == "array":
        lo = draw(st.integers(0, 2))
        schema = {"type": draw(st.sampled_from(["array", "tuple"])), "items": draw(schemas(depth + 1))}
        if draw(st.booleans()):
            schema.update(minItems=lo, maxItems=lo + draw(st.integers(0, 3)))
        return schema
    if kind == "anyof":
        return {"anyOf": draw(st.lists(schemas(depth + 1), min_size=1, max_size=3))}
    if kind == "typelist":
        return {"type": draw(st.lists(st.sampled_from(["string", "integer", "null", "boolean"]), min_size=1, max_size=3, unique=True))}
    return objects_(draw, depth + 1)


def objects_(draw, depth: int) -> dict:
    names = draw(st.lists(NAMES, min_size=0, max_size=4, unique=True))
    props = {n: draw(schemas(depth)) for n in names}
    if not names and draw(st.booleans()):
        return {"type": "object"}  # free-form
    return {"type": draw(st.sampled_from(["object", "dict"])), "properties": props,
            "required": draw(st.lists(st.sampled_from(names), unique=True)) if names else []}


@st.composite
def toolsets(draw):
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    return [{"name": n, "description": f"Tool {n}", "parameters": objects_(draw, 1)} for n in names]


@settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tools=toolsets(), seed=st.integers(0, 2**31 - 1), temperature=st.floats(0.7, 2.0),
       budget=st.integers(8, 96), query=st.sampled_from([
           "What's the weather like in New York in fahrenheit?", "Do it twice, with different values.",
           "Call every tool you have.", "Nothing to do here, thanks."]))
def test_every_output_is_valid(caller, tools, seed, temperature, budget, query):
    check_valid_output(caller, tools, seed, temperature, budget, query)


# Qwen2.5-Coder-0.5B writes the tags as special tokens (or text), in its native format (its manifest
# default: one block per call): the same property, fewer cases (a larger model).
@settings(max_examples=max(4, EXAMPLES // 10), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tools=toolsets(), seed=st.integers(0, 2**31 - 1), temperature=st.floats(0.7, 2.0),
       budget=st.integers(8, 96), query=st.sampled_from([
           "What's the weather like in New York in fahrenheit?", "Call every tool you have."]))
def test_every_output_is_valid_on_a_tool_calling_model(qwen_caller, tools, seed, temperature, budget, query):
    check_valid_output(qwen_caller, tools, seed, temperature, budget, query)


def check_valid_output(caller, tools, seed, temperature, budget, query):
    normalized = {t.name: t for t in normalize_tools(tools)}
    s = caller.settings.with_(temperature=temperature, seed=seed, max_tokens=budget)
    result = caller.call(query, tools, settings=s)
    if caller.tool_format(s) == NATIVE:  # blocks, a sentence or nothing; each block one call
        if result.message is not None:
            assert result.calls == [] and not result.text.startswith("<")
            return
        blocks = get_format(NATIVE).complete_calls(result.text)  # "<tool_call>\n{...}\n</tool_call>", "\n" between
        assert (blocks[-1][1] if blocks else 0) == len(result.text), result.text
        parsed = [value for value, _ in blocks]
    else:
        assert result.text.startswith(OPEN) and result.text.endswith(CLOSE), result.text
        parsed = json.loads(result.text[len("<tool_call>"):-len("</tool_call>")])
    assert isinstance(parsed, list)
    for call in parsed:
        assert set(call) == {"name", "arguments"}
        assert call["name"] in normalized
        jsonschema.validate(call["arguments"], normalized[call["name"]].parameters)



@pytest.fixture(scope="module")
def one_thread_caller(standin_path):
    # One thread: llama.cpp rounds batched and single-token evaluation identically (see test_decode).
    with ToolCaller.load(str(standin_path), Settings(date_string=PINNED_DATE, n_threads=1)) as c:
        yield c


@settings(max_examples=max(4, EXAMPLES // 6), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tools=toolsets(), budget=st.integers(16, 120), query=st.sampled_from([
    "What's the weather like in New York in fahrenheit?", "Call every tool you have."]))
def test_fast_forward_equals_step_by_step_on_random_schemas(one_thread_caller, tools, budget, query):
    # Forced tokens are the only token llguidance's mask allows at their position, so the two paths
    # pick the same tokens, and a budget cuts both at the same place.
    caller = one_thread_caller
    slow = caller.call(query, tools, settings=caller.settings.with_(max_tokens=budget, fast_forward=False,
                                                                     speculate=False))
    fast = caller.call(query, tools, settings=caller.settings.with_(max_tokens=budget))
    assert fast.text == slow.text
    assert fast.truncated == slow.truncated
    assert fast.timings["sampled_tokens"] + fast.timings["forced_tokens"] == slow.timings["sampled_tokens"]


@settings(max_examples=max(4, EXAMPLES // 6), deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(tools=toolsets(), budget=st.integers(16, 120), temperature=st.sampled_from([0.0, 0.9]), query=st.sampled_from([
    "What's the weather like in New York in fahrenheit?",
    'Send "see you at 5 pm in the lobby" to alice_b and copy /home/alice/notes/todo.txt to /tmp/todo.txt.']))
def test_speculation_never_changes_the_output_on_random_schemas(one_thread_caller, tools, budget, temperature, query):
    # A draft only saves llama_decode calls: each token is still picked from its own row of logits,
    # under the same mask and with the same random draws.
    caller = one_thread_caller
    base = caller.settings.with_(max_tokens=budget, temperature=temperature, seed=5)
    plain = caller.call(query, tools, settings=base.with_(speculate=False))
    drafted = caller.call(query, tools, settings=base)
    assert drafted.text == plain.text
    assert drafted.truncated == plain.truncated
    assert plain.timings["drafted_tokens"] == 0
    assert drafted.timings["decode_steps"] + drafted.timings["accepted_tokens"] >= plain.timings["decode_steps"]
