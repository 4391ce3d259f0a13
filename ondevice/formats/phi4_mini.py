"""Phi-4-mini's layout (the template llama.cpp ships for microsoft/Phi-4-mini-instruct, since
Microsoft's own cannot take ``tools``): the tools as ``<|tool|>{...}<|/tool|>`` in the system turn, each
call a block ``<|tool_call|>{"name": ..., "arguments": {...}}<|/tool_call|>`` with nothing between the
tags, the JSON and the next block; results in a ``<|tool_response|>`` turn. Microsoft's own template
renders no calls (`phi-4-mini-reasoning.jinja` in the fixtures) and is not recognized.
"""

from __future__ import annotations

from ..settings import PHI4_MINI
from .native import NativeFormat

OPEN, CLOSE = "<|tool_call|>", "<|/tool_call|>"


class Phi4MiniFormat(NativeFormat):
    name = PHI4_MINI
    summary = "the model's own chat template with the tools, one " + OPEN + " block per call (Phi-4-mini)"
    tags = (OPEN, CLOSE)
    stream_head = OPEN
    inner = ""
    separator = ""
    family = "Phi-4-mini"
