"""A GGUF loaded by its path is prompted in its own tool format: detected from its chat template
(native for Hermes <tool_call> tags, as Qwen2.5; card otherwise, as the card's Llama 3.2 template)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import AssetError
from ondevice.formats import get_format
from ondevice.formats.detect import choose, detect_format, format_for_path, probe_answer, read_chat_template
from ondevice.settings import CARD, NATIVE, XLAM
from ondevice.models.catalog import resolve

from ..common import EXAMPLES, PINNED_DATE, QWEN_ALIAS, REPO, SHARED

WEATHER = "What's the weather like in New York in fahrenheit?"
SIDE_EFFECT_TOOLS = [
    {"name": "send_message", "description": "Post a message to a chat channel",
     "parameters": {"type": "object", "properties": {"channel": {"type": "string"}, "text": {"type": "string"}},
                    "required": ["channel", "text"]}},
    {"name": "log_event", "description": "Record an analytics event",
     "parameters": {"type": "object", "properties": {"kind": {"type": "string"}}, "required": ["kind"]}},
]
HERMES = ("{%- if tools %}<tools>{% for t in tools %}{{ t | tojson }}{% endfor %}</tools> For each call return "
          "<tool_call>{\"name\": ..., \"arguments\": ...}</tool_call>{%- endif %}")


# --- detection, no model -------------------------------------------------------------------------

@pytest.mark.nomodel
def test_the_cards_llama_template_stays_card():
    template = (SHARED / "fixtures" / "llama-3.2-chat-template.jinja").read_text()
    fmt, reason = detect_format(template)
    assert fmt == CARD and '"parameters"' in reason and "--tool-format llama3" in reason


@pytest.mark.nomodel
def test_hermes_tags_are_native_and_no_tools_is_card():
    assert detect_format(HERMES)[0] == NATIVE
    assert detect_format("{{ messages[0].content }}<tool_call>")[0] == CARD  # tags but no tools variable
    assert detect_format("{% for m in messages %}{{ m.content }}{% endfor %}") == (
        CARD, "its chat template takes no tools: the card's format")
    assert detect_format(None)[0] == CARD


@pytest.mark.nomodel
def test_the_xlam_template_is_recognized_by_the_call_it_writes():
    template = (SHARED / "fixtures" / "chat-templates" / "xlam-2.jinja").read_text()
    fmt, reason = detect_format(template)
    assert fmt == XLAM and 'writes a call as \'[{"name": "probe_tool"' in reason
    assert choose({}, template).no_call == "text"  # trained to say "no tool fits" in words


@pytest.mark.nomodel
def test_a_template_that_renders_no_call_is_recognized_from_its_source():
    template = (SHARED / "fixtures" / "chat-templates" / "xlam-2.jinja").read_text()
    assert get_format(XLAM).recognize(template) is not None  # its instruction, the fallback
    smollm3 = (SHARED / "fixtures" / "chat-templates" / "smollm3.jinja").read_text()
    assert probe_answer(smollm3) is None and detect_format(smollm3)[0] == NATIVE  # its <tool_call> text


@pytest.mark.nomodel
def test_a_call_layout_no_format_reads_is_named_in_the_reason():
    template = (SHARED / "fixtures" / "chat-templates" / "command-r7b.jinja").read_text()
    fmt, reason = detect_format(template)
    assert fmt == CARD and "<|START_ACTION|>" in reason and "no format reads" in reason


@pytest.mark.nomodel
def test_a_manifest_overrides_detection_and_says_so():
    chosen = choose({"alias": "x", "tool_format": "card", "no_call": "threshold"}, HERMES)
    assert (chosen.tool_format, chosen.no_call) == ("card", "threshold")
    assert "manifest (x) sets tool_format card" in chosen.reason and "would give native" in chosen.reason
    detected = choose({}, HERMES)
    assert (detected.tool_format, detected.no_call) == (NATIVE, "text")  # a tool-trained model answers in words
    assert choose({}, None).no_call == "list"


def test_the_header_reader_finds_the_template_of_real_files(standin_path):
    qwen = resolve(QWEN_ALIAS).path
    assert format_for_path(qwen)[0] == NATIVE
    assert "<tool_call>" in read_chat_template(qwen)
    assert format_for_path(standin_path)[0] == CARD


@pytest.mark.nomodel
def test_the_header_reader_refuses_what_is_not_a_gguf(tmp_path):
    text = tmp_path / "notes.gguf"
    text.write_text("hello")
    with pytest.raises(AssetError, match="not a GGUF file"):
        read_chat_template(text)
    cut = tmp_path / "cut.gguf"  # a header that promises one key and ends
    cut.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + struct.pack("<Q", 40) + b"tokenizer")
    with pytest.raises(AssetError, match="cut or malformed"):
        read_chat_template(cut)
    with pytest.raises(AssetError, match="cannot read"):
        read_chat_template(tmp_path / "missing.gguf")


def test_models_command_shows_the_format_and_why(standin_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    run = subprocess.run([sys.executable, "-m", "ondevice", "models", "--json"], capture_output=True, text=True,
                         env=env, cwd=REPO, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = {r["alias"]: r for r in json.loads(run.stdout)}
    assert rows["smollm2-135m-instruct"]["tool_format"] == CARD
    assert rows["smollm2-135m-instruct"]["default"]  # the tests pin the stand-in (ONDEVICE_MODEL)
    one = subprocess.run([sys.executable, "-m", "ondevice", "models", str(standin_path)], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=120)
    assert one.returncode == 0 and "tool format: card (its chat template takes no tools" in one.stdout
    bad = subprocess.run([sys.executable, "-m", "ondevice", "models", str(REPO / "README.md")], capture_output=True,
                         text=True, env=env, cwd=REPO, timeout=120)
    assert bad.returncode == 2 and "not a GGUF file" in bad.stderr


# --- Qwen by its path ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def qwen_by_path(ondevice_home: Path) -> ToolCaller:
    path = resolve(QWEN_ALIAS).path
    with ToolCaller.load(str(path), Settings(date_string=PINNED_DATE, n_ctx=4096)) as c:
        assert c.resolved.alias is None  # no manifest came with it
        yield c


def test_qwen_by_path_uses_its_own_format(qwen_by_path):
    assert qwen_by_path.default_tool_format == NATIVE
    assert qwen_by_path.default_no_call == "text"
    assert "writes a call as '<tool_call>" in qwen_by_path.format_choice.reason


def test_qwen_by_path_weather_is_one_call_with_the_unit(qwen_by_path):
    tools = json.loads((EXAMPLES / "simple" / "tools.json").read_text())
    result = qwen_by_path.call(WEATHER, tools)
    assert [c.to_dict() for c in result.calls] == [
        {"name": "get_weather", "arguments": {"location": "New York", "unit": "fahrenheit"}}]


def _assert_no_duplicate(calls):
    seen = [json.dumps(c.to_dict(), sort_keys=True) for c in calls]
    if len(seen) != len(set(seen)):
        pytest.xfail("NEEDS-REPEAT-FIX: the model repeats an identical call (issue 22 item 2)")


@pytest.mark.parametrize("query", ["Send a message to #ops saying: deploy is done", "Log an event of kind 'signup'"])
def test_qwen_by_path_side_effects_are_not_duplicated(qwen_by_path, query):
    result = qwen_by_path.call(query, SIDE_EFFECT_TOOLS)
    assert result.calls, result.text
    _assert_no_duplicate(result.calls)
    assert len(result.calls) == 1, result.calls


def test_qwen_by_path_answers_in_text_after_a_tool_result(qwen_by_path):
    tools = json.loads((EXAMPLES / "simple" / "tools.json").read_text())
    conv = qwen_by_path.conversation(tools)
    first = conv.ask("What's the weather in Paris?")
    assert first.calls and first.calls[0].name == "get_weather"
    conv.add_tool_result(json.dumps({"temperature": 18, "unit": "celsius", "sky": "clear"}))
    answer = conv.reply()
    # the same call again is refused: the answer is text (Qwen2.5-Coder-0.5B's words there can be poor,
    # docs/formats.md: When the model stops calling)
    assert not answer.calls and answer.message and answer.finish_reason == "stop", answer.text


@pytest.mark.nomodel
def test_the_readmes_template_table_is_what_detection_gives():
    """Each row of the README's table names templates and the format ondevice detects for them."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("### Which format each real chat template gets", 1)[1].split("\n## ", 1)[0]
    seen = set()
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split(" | ")]
        if len(cells) < 2 or not cells[0].startswith("`"):
            continue
        expected = cells[1].strip("`")
        for name in (n.strip().strip("`") for n in cells[0].split(",")):
            seen.add(name)
            template = (SHARED / "fixtures" / "chat-templates" / name).read_text()
            assert detect_format(template)[0] == expected, name
    assert seen == {p.name for p in (SHARED / "fixtures" / "chat-templates").glob("*.jinja")}
