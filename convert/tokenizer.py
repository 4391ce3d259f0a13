"""Turn tokenizer.json (+ tokenizer_config.json) into llama.cpp's GGUF tokenizer metadata.

Only byte-level BPE tokenizers (llama.cpp model "gpt2") are supported. llama.cpp picks its
pre-tokenizer regex by name, so the pre-tokenizer in tokenizer.json is matched against a table of
known ones; an unknown pre-tokenizer is an error rather than a silently different tokenization.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import ConversionError, MissingFileError

# GGUF token types (gguf.TokenType)
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5

LLAMA3_SPLIT_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# (signature of tokenizer.json's pre_tokenizer, llama.cpp pre-tokenizer name).
# A signature lists the pre-tokenizer steps with only the fields that change the splitting.
PRE_TOKENIZERS: list[tuple[tuple, str]] = [
    ((("Split", LLAMA3_SPLIT_REGEX, "Isolated"), ("ByteLevel", False, False)), "llama-bpe"),
    ((("Digits", True), ("ByteLevel", False, True)), "smollm"),
    ((("ByteLevel", False, True),), "gpt2"),
]


def pre_tokenizer_signature(pre: Optional[dict[str, Any]]) -> tuple:
    """Reduce a tokenizers pre_tokenizer JSON to the fields that decide how text is split."""
    if pre is None:
        return ()
    steps = pre["pretokenizers"] if pre.get("type") == "Sequence" else [pre]
    sig = []
    for s in steps:
        t = s.get("type")
        if t == "Split":
            pattern = s.get("pattern", {})
            sig.append(("Split", pattern.get("Regex", pattern.get("String")), s.get("behavior")))
        elif t == "ByteLevel":
            sig.append(("ByteLevel", bool(s.get("add_prefix_space")), bool(s.get("use_regex", True))))
        elif t == "Digits":
            sig.append(("Digits", bool(s.get("individual_digits"))))
        else:
            sig.append((t,))
    return tuple(sig)


def detect_pre_tokenizer(tokenizer: dict[str, Any]) -> str:
    sig = pre_tokenizer_signature(tokenizer.get("pre_tokenizer"))
    for known, name in PRE_TOKENIZERS:
        if sig == known:
            return name
    raise ConversionError(
        f"expected a pre-tokenizer llama.cpp knows ({', '.join(n for _, n in PRE_TOKENIZERS)}), "
        f"got {sig!r}; add its signature to ondevice_convert.tokenizer.PRE_TOKENIZERS with the matching "
        "llama.cpp pre-tokenizer name"
    )


@dataclass
class GGUFTokenizer:
    model: str
    pre: str
    tokens: list[str]
    token_types: list[int]
    merges: list[str]
    bos_id: Optional[int]
    eos_id: Optional[int]
    eot_id: Optional[int]
    eom_id: Optional[int]
    pad_id: Optional[int]
    unk_id: Optional[int]
    add_bos: bool
    add_eos: bool
    chat_template: Optional[str]


def _token_content(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, dict):
        return value.get("content")
    return str(value)


def _adds_bos(tokenizer: dict[str, Any], bos: Optional[str]) -> bool:
    """True when the post-processor puts BOS in front of a single sequence (Llama 3)."""
    post = tokenizer.get("post_processor")
    if not post or bos is None:
        return False
    procs = post["processors"] if post.get("type") == "Sequence" else [post]
    for p in procs:
        if p.get("type") == "TemplateProcessing":
            first = p.get("single", [{}])[0]
            if first.get("SpecialToken", {}).get("id") == bos:
                return True
    return False


def load_tokenizer(directory: Path, config: dict[str, Any], vocab_size: int) -> GGUFTokenizer:
    """Read tokenizer.json / tokenizer_config.json from a checkpoint directory."""
    directory = Path(directory)
    tj = directory / "tokenizer.json"
    if not tj.is_file():
        raise MissingFileError(
            f"{directory}: expected tokenizer.json (a fast tokenizer); it is missing. Only byte-level "
            "BPE tokenizers stored as tokenizer.json are supported"
        )
    tok = json.loads(tj.read_text(encoding="utf-8"))
    tc_path = directory / "tokenizer_config.json"
    tcfg: dict[str, Any] = json.loads(tc_path.read_text(encoding="utf-8")) if tc_path.is_file() else {}
    model = tok.get("model", {})
    if model.get("type") != "BPE":
        raise ConversionError(f"expected a BPE tokenizer in tokenizer.json, got {model.get('type')!r}")
    decoder = tok.get("decoder") or {}
    if decoder.get("type") != "ByteLevel":
        raise ConversionError(f"expected a byte-level BPE (ByteLevel decoder), got decoder {decoder.get('type')!r}")
    pre = detect_pre_tokenizer(tok)

    vocab: dict[str, int] = dict(model["vocab"])
    added: dict[int, dict[str, Any]] = {a["id"]: a for a in tok.get("added_tokens", [])}
    for a in added.values():
        vocab[a["content"]] = a["id"]
    n = max(vocab_size, max(vocab.values()) + 1)
    if n > vocab_size:
        raise ConversionError(
            f"expected at most vocab_size={vocab_size} tokens (config.json), tokenizer.json has ids up to {n - 1}"
        )
    tokens: list[Optional[str]] = [None] * n
    for text, i in vocab.items():
        tokens[i] = text
    types = [NORMAL] * n
    for i in range(n):
        if tokens[i] is None:
            tokens[i] = f"[PAD{i}]"
            types[i] = UNUSED
        elif i in added:
            types[i] = CONTROL if added[i].get("special") else USER_DEFINED

    merges = [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]

    def tid(value: Any) -> Optional[int]:
        text = _token_content(value)
        return vocab.get(text) if text is not None else None

    bos_text = _token_content(tcfg.get("bos_token"))
    bos_id = tid(tcfg.get("bos_token"))
    if bos_id is None and isinstance(config.get("bos_token_id"), int):
        bos_id = config["bos_token_id"]
    eos_id = tid(tcfg.get("eos_token"))
    if eos_id is None:
        cfg_eos = config.get("eos_token_id")
        eos_id = cfg_eos[0] if isinstance(cfg_eos, list) and cfg_eos else cfg_eos
    add_bos = tcfg.get("add_bos_token")
    if add_bos is None:
        add_bos = _adds_bos(tok, bos_text)
    return GGUFTokenizer(
        model="gpt2",
        pre=pre,
        tokens=tokens,  # type: ignore[arg-type]
        token_types=types,
        merges=merges,
        bos_id=bos_id,
        eos_id=eos_id,
        eot_id=vocab.get("<|eot_id|>"),
        eom_id=vocab.get("<|eom_id|>"),
        pad_id=tid(tcfg.get("pad_token")),
        unk_id=tid(tcfg.get("unk_token")),
        add_bos=bool(add_bos),
        add_eos=bool(tcfg.get("add_eos_token", False)),
        chat_template=_chat_template(directory, tcfg),
    )


def _chat_template(directory: Path, tcfg: dict[str, Any]) -> Optional[str]:
    """tokenizer_config.json's chat_template, else a chat_template.jinja file beside it."""
    template = tcfg.get("chat_template")
    if isinstance(template, str):
        return template
    if isinstance(template, list):  # [{"name": "default", "template": ...}, ...]
        for entry in template:
            if entry.get("name") == "default":
                return entry.get("template")
    jinja = directory / "chat_template.jinja"
    return jinja.read_text(encoding="utf-8") if jinja.is_file() else None
