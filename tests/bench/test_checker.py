"""BFCL's own AST checker, loaded through the stand-in for its provider-SDK import."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from ondevice.formats.blocks import ToolCall
import pytest

pytestmark = pytest.mark.nomodel


def _case(bfcl, case_id):
    category = case_id.rsplit("_", 1)[0] if not case_id.startswith("live_") else case_id.split("_", 2)[0] + "_" + case_id.split("_", 2)[1]
    return next(c for c in bfcl.load_category(category) if c.id == case_id)


def test_checker_loads_with_every_provider_sdk_blocked():
    # A fresh interpreter where importing any provider SDK fails: the checker must still load and judge.
    code = textwrap.dedent(
        """
        import sys, importlib.abc
        BLOCKED = {"openai", "anthropic", "mistralai", "cohere", "google", "boto3", "writer_sdk",
                   "qwen_agent", "sentence_transformers", "faiss", "tree_sitter", "datamodel_code_generator"}
        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in BLOCKED:
                    raise ModuleNotFoundError(f"blocked: {name}", name=name)
                return None
        sys.meta_path.insert(0, Block())
        from ondevice_bench import bfcl
        from ondevice.formats.blocks import ToolCall
        case = bfcl.load_category("simple_python")[0]
        ok = bfcl.bfcl_verdict(case, [ToolCall("calculate_triangle_area", {"base": 10, "height": 5})])
        bad = bfcl.bfcl_verdict(case, [ToolCall("calculate_triangle_area", {"base": 10, "height": 6})])
        assert ok[0] is True, ok
        assert bad[0] is False, bad
        assert "bfcl_eval.constants.model_config" not in sys.modules
        assert not any(m.split(".")[0] in BLOCKED for m in sys.modules)
        print("OK")
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("OK")


def test_simple_case_ground_truth_accepted_and_wrong_answers_rejected(bfcl):
    case = bfcl.load_category("simple_python")[0]  # calculate_triangle_area(base=10, height=5, unit optional)
    assert bfcl.bfcl_verdict(case, [ToolCall("calculate_triangle_area", {"base": 10, "height": 5})])[0]
    assert bfcl.bfcl_verdict(case, [ToolCall("calculate_triangle_area", {"base": 10, "height": 5, "unit": "units"})])[0]
    wrong_value = bfcl.bfcl_verdict(case, [ToolCall("calculate_triangle_area", {"base": 5, "height": 10})])
    assert wrong_value[0] is False and wrong_value[1].startswith("value_error")
    wrong_count = bfcl.bfcl_verdict(case, [])
    assert wrong_count[0] is False
    assert bfcl.bfcl_verdict(case, None)[1] == "ast_decoder:decoder_failed"


def test_dotted_tool_names_are_checked_as_they_are(bfcl):
    case = bfcl.load_category("simple_python")[1]  # math.factorial(number=5)
    assert case.functions[0]["name"] == "math.factorial"
    assert bfcl.bfcl_verdict(case, [ToolCall("math.factorial", {"number": 5})])[0]
    assert not bfcl.bfcl_verdict(case, [ToolCall("math_factorial", {"number": 5})])[0]


def test_parallel_case_accepts_any_order_and_rejects_a_missing_call(bfcl):
    case = bfcl.load_category("parallel")[0]
    calls = []
    for entry in case.ground_truth:
        for name, params in entry.items():
            calls.append(ToolCall(name, {k: v[0] for k, v in params.items() if v and v[0] != ""}))
    assert len(calls) >= 2
    assert bfcl.bfcl_verdict(case, calls)[0]
    assert bfcl.bfcl_verdict(case, list(reversed(calls)))[0]
    assert not bfcl.bfcl_verdict(case, calls[:-1])[0]


def test_irrelevance_is_correct_only_without_a_call(bfcl):
    case = bfcl.load_category("irrelevance")[0]
    name = case.functions[0]["name"]
    assert bfcl.bfcl_verdict(case, [])[0]
    assert bfcl.bfcl_verdict(case, None)[0]  # free text: no call made
    assert not bfcl.bfcl_verdict(case, [ToolCall(name, {})])[0]


def test_validity_needs_given_tools_and_schema_valid_arguments(bfcl):
    case = bfcl.load_category("simple_python")[0]
    assert bfcl.format_validity(case, [ToolCall("calculate_triangle_area", {"base": 10, "height": 5})]) == (True, None)
    assert bfcl.format_validity(case, [])[0]
    assert not bfcl.format_validity(case, None)[0]
    assert "unknown tool" in bfcl.format_validity(case, [ToolCall("area", {"base": 1, "height": 2})])[1]
    # "integer" in BFCL's dialect: a string is not valid, and a required argument may not be missing
    assert not bfcl.format_validity(case, [ToolCall("calculate_triangle_area", {"base": "10", "height": 5})])[0]
    assert not bfcl.format_validity(case, [ToolCall("calculate_triangle_area", {"base": 10})])[0]
    assert not bfcl.format_validity(case, [ToolCall("calculate_triangle_area", {"base": 10, "height": 5, "color": "red"})])[0]


def test_bfcl_float_type_takes_integers_and_floats(bfcl):
    case = next(c for c in bfcl.load_category("simple_python")
                if any(p.get("type") == "float" for p in c.functions[0]["parameters"]["properties"].values()))
    props = case.functions[0]["parameters"]["properties"]
    required = case.functions[0]["parameters"].get("required", [])
    name = case.functions[0]["name"]
    args = {}
    for key in required:
        kind = props[key]["type"]
        args[key] = {"float": 1.5, "integer": 2, "string": "x", "boolean": True, "array": [], "dict": {}}.get(kind, "x")
    assert bfcl.format_validity(case, [ToolCall(name, args)])[0], (args, props)
