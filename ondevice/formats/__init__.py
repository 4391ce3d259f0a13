"""Tool formats, registered by name: each is one module implementing `ToolFormat` (base.py).

    from ondevice.formats import get_format, register
    fmt = get_format("native")      # "card": the fine-tune's; "native": the model's own template (Hermes blocks)
    register(MyFormat())            # a third format: one new module

The shared reading of tagged blocks is in blocks.py, the card's prompt strings in prompt.py. The two
built-in formats register on first use (they build on the grammar rules, which read blocks.py).
"""

from __future__ import annotations

from .base import ToolFormat

_REGISTRY: dict[str, ToolFormat] = {}


def _builtins() -> dict[str, ToolFormat]:
    if not _REGISTRY:
        from .card import CardFormat
        from .native import NativeFormat

        for fmt in (CardFormat(), NativeFormat()):
            _REGISTRY[fmt.name] = fmt
    return _REGISTRY


def register(fmt: ToolFormat) -> ToolFormat:
    """Make `fmt` available by its name (a name already taken is an error)."""
    registry = _builtins()
    if not fmt.name or fmt.name in registry:
        raise ValueError(f"a tool format needs a new name, got {fmt.name!r} (taken: {sorted(registry)})")
    registry[fmt.name] = fmt
    return fmt


def get_format(name: str) -> ToolFormat:
    """The format registered as `name`; a ValueError naming the known ones otherwise."""
    try:
        return _builtins()[name]
    except KeyError:
        raise ValueError(f"unknown tool format {name!r}: expected one of {format_names()}") from None


def format_names() -> list[str]:
    return list(_builtins())


__all__ = ["ToolFormat", "register", "get_format", "format_names"]
