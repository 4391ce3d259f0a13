"""Which tool format a model is prompted in, and why: its manifest's, else what its chat template shows.

A model trained for tool calls carries the layout in its chat template (GGUF metadata
``tokenizer.chat_template``). The template is rendered with probe messages (a tool, a user turn, an
assistant turn holding one call of it) and the text it writes for the call is read back by each
format's own reader (`ToolFormat.reads_probe`): the format that finds the probe call there is the
model's (``<tool_call>`` blocks: ``native``; ``<|tool_call|>`` blocks: ``phi4-mini``; a
``[TOOL_CALLS][...]`` list: ``mistral``; a bare JSON array: ``xlam``). A template that renders no call
(or refuses the probe) is recognized from its source (`ToolFormat.recognize`: its system text, its
tags). Any other template (no tools, or tools in a layout no format reads) gets the model card's
format, ``card``: Llama 3.x's template among them, since the fine-tune ondevice is built for carries
it unchanged (a plain Llama 3.x Instruct is ``--tool-format llama3``).

The template is read from the GGUF header here (no model load), so ``ondevice models`` and
``ondevice doctor`` can say what a file would get without llama.cpp.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from ..errors import AssetError, ChatTemplateError
from ..gguf import GGUFError, read_header
from ..settings import CARD
from ..template.chat_template import ChatTemplate
from .base import takes_tools
from .reasoning import thinking_block
from .registry import format_names, get_format

TEMPLATE_KEY = "tokenizer.chat_template"


@dataclass(frozen=True)
class FormatChoice:
    """The defaults a model is loaded with: tool format, no-call mode and threshold, and why."""

    tool_format: str
    no_call: str
    no_call_threshold: float
    reason: str


PROBE_TOOL = {"type": "function", "function": {
    "name": "probe_tool", "description": "A probe of the chat template.",
    "parameters": {"type": "object", "properties": {"probe_arg": {"type": "string", "description": "A value."}}, "required": ["probe_arg"]}}}
PROBE_CALL = {"name": "probe_tool", "arguments": {"probe_arg": "probe-value"}}
_PROBE_ID = "probe0001"  # nine letters and digits: Mistral's templates refuse other call ids


def probe_answer(template: str) -> Optional[str]:
    """What a chat template writes for an assistant turn holding the probe call (after the generation
    prompt, a thinking block left out); None where it writes no call or refuses the probe."""
    chat = ChatTemplate(template)
    user = {"role": "user", "content": "Probe the tool."}
    turn = {"role": "assistant", "content": "", "tool_calls": [
        {"id": _PROBE_ID, "type": "function", "function": {"name": PROBE_CALL["name"], "arguments": PROBE_CALL["arguments"]}}]}
    try:
        head = chat.render([user], add_generation_prompt=True, tools=[PROBE_TOOL])
        whole = chat.render([user, turn], add_generation_prompt=False, tools=[PROBE_TOOL])
    except ChatTemplateError:
        return None
    answer = whole[len(os.path.commonprefix([head, whole])):]
    if PROBE_CALL["arguments"]["probe_arg"] not in answer:
        return None
    block = thinking_block(template)
    if block is not None and block.ended(answer) is not None and answer.lstrip().startswith(block.open):
        answer = answer[block.ended(answer):]  # Qwen3 writes an empty thought before the calls
    return answer.strip()


def detect_format(template: Optional[str]) -> tuple[str, str]:
    """(format, reason) from a chat template: the first registered format that reads the call the
    template writes for the probe (`probe_answer`, `ToolFormat.reads_probe`), else the first that
    recognizes its source (`ToolFormat.recognize`), else ``card``."""
    if not template:
        return CARD, "the GGUF carries no chat template: the card's format"
    answer = probe_answer(template)
    shown = None if answer is None else repr(answer if len(answer) <= 60 else answer[:59] + "…")
    unclaimed = []
    for name in format_names():
        fmt = get_format(name)
        if answer is not None:  # the template writes calls: the format whose reader finds the probe's
            reason = (f"its chat template writes a call as {shown}"
                      if fmt.template_layout and fmt.reads_probe(answer, PROBE_CALL) else None)
        else:  # it writes none (or refuses the probe): its source may still say
            reason = fmt.recognize(template)
        if reason is not None and fmt.claims_template:
            return name, f"{reason}: {name}"
        if reason is not None:
            unclaimed.append(f"{reason}, the fine-tune's layout too: the card's format "
                             f"(--tool-format {name} for the plain model)")
    if unclaimed:
        return CARD, unclaimed[0]
    if answer is not None:
        return CARD, f"its chat template writes a call as {shown}, a layout no format reads yet: the card's format"
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
    no_call = manifest.get("no_call", get_format(fmt).no_call)
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
