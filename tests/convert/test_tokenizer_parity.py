"""GGUF tokenization (llama.cpp) is identical to tokenizer.json (the `tokenizers` library)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice_convert.verify import CHAT_CONVERSATIONS, VERIFY_TEXTS, llama_vocab, render_chat, tokenization_mismatches


def _chat_prompts(ckpt: Path) -> list[str]:
    template = json.loads((ckpt / "tokenizer_config.json").read_text())["chat_template"]
    tools = [{"type": "function", "function": {"name": "get_weather", "description": "Weather 🌤 in a city",
                                               "parameters": {"type": "object", "properties": {
                                                   "location": {"type": "string"}}, "required": ["location"]}}}]
    prompts = [render_chat(template, conv) for conv in CHAT_CONVERSATIONS]
    prompts.append(render_chat(template, CHAT_CONVERSATIONS[0], tools=tools))
    prompts.append(render_chat(template, CHAT_CONVERSATIONS[1], add_generation_prompt=False))
    return prompts


@pytest.mark.nomodel
def test_text_set_covers_scripts() -> None:
    joined = "".join(VERIFY_TEXTS)
    for needle in ("def ", '{"', "😀", "中文", "日本語", "한국어", "\t", "12345"):
        assert needle in joined


@pytest.mark.parametrize("add_special", [False, True])
def test_plain_texts(tiny_ckpt: Path, tiny_f16: Path, add_special: bool) -> None:
    bad = tokenization_mismatches(tiny_f16, tiny_ckpt / "tokenizer.json", VERIFY_TEXTS, add_special=add_special)
    assert bad == []


def test_rendered_chat_prompts(tiny_ckpt: Path, tiny_f16: Path) -> None:
    prompts = _chat_prompts(tiny_ckpt)
    assert prompts[0].startswith("<|begin_of_text|><|start_header_id|>system<|end_header_id|>")
    assert "get_weather" in prompts[2]
    bad = tokenization_mismatches(tiny_f16, tiny_ckpt / "tokenizer.json", prompts)
    assert bad == []
    # special tokens in the rendered text become single control tokens
    ids = llama_vocab(tiny_f16).tokenize(prompts[0].encode(), add_bos=False, special=True)
    assert ids[0] == 128000 and ids.count(128009) == 2 and ids.count(128006) == 3


def test_detokenize_roundtrip(tiny_f16: Path) -> None:
    llm = llama_vocab(tiny_f16)
    for text in VERIFY_TEXTS:
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        assert llm.detokenize(ids, special=True).decode() == text


def test_parity_check_can_fail(tiny_ckpt: Path, tiny_f16: Path, tmp_path: Path) -> None:
    """A tokenizer.json with two vocabulary ids swapped disagrees with the GGUF, and the check says so."""
    tok = json.loads((tiny_ckpt / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    vocab["Hello"], vocab["Ġworld"] = vocab["Ġworld"], vocab["Hello"]
    broken = tmp_path / "tokenizer.json"
    broken.write_text(json.dumps(tok, ensure_ascii=False))
    bad = tokenization_mismatches(tiny_f16, broken, [VERIFY_TEXTS[0], VERIFY_TEXTS[2]])
    assert [m.text for m in bad] == [VERIFY_TEXTS[0]]
