"""Tool formats, registered by name: each is one module implementing `ToolFormat` (base.py).

    from ondevice.formats import get_format, register
    fmt = get_format("native")      # "card": the fine-tune's; "native": the model's own template (Hermes blocks)
    register(MyFormat())            # a third format: one new module

The shared reading of tagged blocks is in blocks.py, a request's messages in prompt.py, and an
answer's grammar in a format (its Lark, compiled) in grammar.py.
"""

from __future__ import annotations

from .base import ToolFormat
from .registry import format_names, get_format, register

__all__ = ["ToolFormat", "register", "get_format", "format_names"]
