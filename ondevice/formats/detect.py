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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import AssetError
from ..gguf import GGUFError, read_header
from .tags import TOOL_CALL_CLOSE, TOOL_CALL_OPEN
from ..settings import CARD, NATIVE

TEMPLATE_KEY = "tokenizer.chat_template"
_TOOLS_USE = re.compile(r"\btools\b")  # the template reads the `tools` variable


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
    hermes = TOOL_CALL_OPEN in template and TOOL_CALL_CLOSE in template
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


def read_chat_template(path: str | Path) -> Optional[str]:
    """The ``tokenizer.chat_template`` string of a GGUF file, or None; an AssetError if it is not a GGUF."""
    try:
        template = read_header(path, keys=(TEMPLATE_KEY,), tensors=False).kv.get(TEMPLATE_KEY)
    except OSError as exc:
        raise AssetError(f"cannot read {path}: {exc.strerror or exc}") from None
    except GGUFError as exc:
        raise AssetError(f"{path}: {exc}; pass a .gguf model, or re-download or re-convert it") from None
    return template if isinstance(template, str) else None
