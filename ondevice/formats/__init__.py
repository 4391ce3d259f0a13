"""Tool formats, registered by name: each is one module implementing `ToolFormat` (base.py).

    from ondevice.formats import get_format, register
    fmt = get_format("native")      # "card": the fine-tune's; "native": the model's own template (Hermes blocks)
    register(MyFormat())            # a third format: one new module
"""

from __future__ import annotations

from .base import ToolFormat
from .card import CardFormat
from .native import NativeFormat

_REGISTRY: dict[str, ToolFormat] = {}


def register(fmt: ToolFormat) -> ToolFormat:
    """Make `fmt` available by its name (a name already taken is an error)."""
    if not fmt.name or fmt.name in _REGISTRY:
        raise ValueError(f"a tool format needs a new name, got {fmt.name!r} (taken: {sorted(_REGISTRY)})")
    _REGISTRY[fmt.name] = fmt
    return fmt


def get_format(name: str) -> ToolFormat:
    """The format registered as `name`; a ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown tool format {name!r}: expected one of {format_names()}") from None


def format_names() -> list[str]:
    return list(_REGISTRY)


CARD = register(CardFormat())
NATIVE = register(NativeFormat())

__all__ = ["ToolFormat", "CardFormat", "NativeFormat", "register", "get_format", "format_names"]
