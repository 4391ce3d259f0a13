"""Which tool format a model is prompted in, and why: its manifest's, else what its chat template shows.

A model trained for tool calls carries the layout in its chat template (GGUF metadata
``tokenizer.chat_template``). Each format says whether a template is its own (`ToolFormat.recognize`):
``native`` a template that renders the ``tools`` variable and writes each call between ``<tool_call>``
and ``</tool_call>`` (Hermes, as Qwen2.5 does); ``phi4-mini`` one with ``<|tool_call|>`` blocks;
``mistral`` one with a ``[TOOL_CALLS][...]`` list;
``xlam`` one that asks for the calls "in a single JSON array" (xLAM-2). Any other template (no tools, or tools in another layout) gets the model card's
format, ``card``: Llama 3.x's template among them, since the fine-tune ondevice is built for carries
it unchanged (a plain Llama 3.x Instruct is ``--tool-format llama3``).

The template is read from the GGUF header here (no model load), so ``ondevice models`` and
``ondevice doctor`` can say what a file would get without llama.cpp.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import AssetError
from ..gguf import GGUFError, read_header
from ..settings import CARD
from .base import takes_tools
from .registry import format_names, get_format

TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass(frozen=True)
class FormatChoice:
    """The defaults a model is loaded with: tool format, no-call mode and threshold, and why."""

    tool_format: str
    no_call: str
    no_call_threshold: float
    reason: str


def detect_format(template: Optional[str]) -> tuple[str, str]:
    """(format, reason) from a chat template's source: the first registered format that recognizes it
    (`ToolFormat.recognize`), else ``card``."""
    if not template:
        return CARD, "the GGUF carries no chat template: the card's format"
    unclaimed = []
    for name in format_names():
        fmt = get_format(name)
        reason = fmt.recognize(template)
        if reason is not None and fmt.claims_template:
            return name, f"{reason}: {name}"
        if reason is not None:
            unclaimed.append(f"{reason}, the fine-tune's layout too: the card's format "
                             f"(--tool-format {name} for the plain model)")
    if unclaimed:
        return CARD, unclaimed[0]
    if takes_tools(template):
        return CARD, "its chat template takes tools, but in a layout no format recognizes: the card's format"
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
    no_call = manifest.get("no_call", "list" if fmt == CARD else "text")
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
