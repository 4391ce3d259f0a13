"""Which tool format a model is prompted in, and why: its manifest's, else what its chat template shows.

A model trained for tool calls carries the layout in its chat template (GGUF metadata
``tokenizer.chat_template``). A template that renders the ``tools`` variable and writes each call
between ``<tool_call>`` and ``</tool_call>`` (Hermes, as Qwen2.5 does) is the ``native`` format: the
model's own template with the tools, one block per call. Any other template (no tools, or tools in a
layout ondevice does not prompt natively, as Llama 3.2's JSON) gets the model card's format, ``card``.

The template is read from the GGUF header here (no model load), so ``ondevice models`` and
``ondevice doctor`` can say what a file would get without llama.cpp.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Optional

from ..errors import AssetError

CARD, NATIVE = "card", "native"  # as ondevice.parse
TEMPLATE_KEY = "tokenizer.chat_template"
_TOOLS_USE = re.compile(r"\btools\b")  # the template reads the `tools` variable
_HERMES_OPEN, _HERMES_CLOSE = "<tool_call>", "</tool_call>"


@dataclass(frozen=True)
class FormatChoice:
    """The defaults a model is loaded with: tool format, no-call mode and threshold, and why."""

    tool_format: str
    no_call: str
    no_call_threshold: float
    reason: str


def detect_format(template: Optional[str]) -> tuple[str, str]:
    """(format, reason) from a chat template's source: ``native`` for Hermes ``<tool_call>`` tags, else ``card``."""
    if not template:
        return CARD, "the GGUF carries no chat template: the card's format"
    takes_tools = bool(_TOOLS_USE.search(template))
    hermes = _HERMES_OPEN in template and _HERMES_CLOSE in template
    if takes_tools and hermes:
        return NATIVE, "its chat template takes tools and writes calls as <tool_call>…</tool_call> (Hermes): native"
    if takes_tools:
        return CARD, ("its chat template takes tools, but not with <tool_call> tags (a layout ondevice does not "
                      "prompt natively): the card's format")
    return CARD, "its chat template takes no tools: the card's format"


def choose(manifest: dict[str, Any], template: Optional[str]) -> FormatChoice:
    """The defaults for a model: what its manifest sets, the rest from its chat template.

    A detected native model answers "no call" with a sentence (``no_call`` text), as such models are
    trained to; a card model keeps the empty list unless its manifest says otherwise.
    """
    if "tool_format" in manifest:
        fmt = manifest["tool_format"]
        reason = f"its manifest ({manifest.get('alias', '?')}) sets tool_format {fmt}"
        if template:
            seen, _ = detect_format(template)
            reason += "; its chat template agrees" if seen == fmt else f"; its chat template alone would give {seen}"
    else:
        fmt, reason = detect_format(template)
    no_call = manifest.get("no_call", "text" if fmt == NATIVE else "list")
    return FormatChoice(fmt, no_call, float(manifest.get("no_call_threshold", 0.5)), reason)


def format_for_path(path: str | Path, manifest: Optional[dict[str, Any]] = None) -> tuple[str, str]:
    """(format, reason) for a GGUF file (with its manifest when it has one), reading only its header."""
    manifest = manifest or {}
    template = read_chat_template(path)
    choice = choose(manifest, template)
    return choice.tool_format, choice.reason


# ---------------------------------------------------------------------------------- GGUF header

# GGUF value types: 0-7 and 10-12 fixed-size scalars, 8 string, 9 array (element type, count, items).
_SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def read_chat_template(path: str | Path) -> Optional[str]:
    """The ``tokenizer.chat_template`` string of a GGUF file, or None; an AssetError if it is not a GGUF."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            return _find_key(fh, TEMPLATE_KEY, path)
    except OSError as exc:
        raise AssetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except (struct.error, UnicodeDecodeError, MemoryError):
        raise AssetError(f"{path}: the GGUF header is cut or malformed; re-download or re-convert it") from None


def _read(fh: BinaryIO, fmt: str) -> Any:
    size = struct.calcsize("<" + fmt)
    data = fh.read(size)
    if len(data) != size:
        raise struct.error("truncated")
    return struct.unpack("<" + fmt, data)[0]


def _read_string(fh: BinaryIO) -> bytes:
    n = _read(fh, "Q")
    if n > 1 << 26:  # no key or template is 64 MiB: a corrupt length
        raise struct.error("string too long")
    data = fh.read(n)
    if len(data) != n:
        raise struct.error("truncated")
    return data


def _skip(fh: BinaryIO, kind: int) -> None:
    if kind in _SCALAR:
        fh.seek(struct.calcsize("<" + _SCALAR[kind]), 1)
    elif kind == _STRING:
        fh.seek(_read(fh, "Q"), 1)
    elif kind == _ARRAY:
        inner, count = _read(fh, "I"), _read(fh, "Q")
        if inner in _SCALAR:
            fh.seek(struct.calcsize("<" + _SCALAR[inner]) * count, 1)
        else:
            for _ in range(count):
                _skip(fh, inner)
    else:
        raise struct.error(f"unknown GGUF value type {kind}")


def _find_key(fh: BinaryIO, wanted: str, path: Path) -> Optional[str]:
    if fh.read(4) != b"GGUF":
        raise AssetError(f"{path} is not a GGUF file (no GGUF magic): pass a .gguf model")
    version = _read(fh, "I")
    if version < 2:
        raise AssetError(f"{path}: GGUF version {version} is too old; re-convert it")
    _read(fh, "Q")  # tensor count
    for _ in range(_read(fh, "Q")):
        key = _read_string(fh).decode("utf-8")
        kind = _read(fh, "I")
        if key == wanted and kind == _STRING:
            return _read_string(fh).decode("utf-8")
        _skip(fh, kind)
    return None
