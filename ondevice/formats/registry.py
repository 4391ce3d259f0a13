"""The tool formats by name: the two built-in ones, and any a program registers."""

from __future__ import annotations

from ..settings import add_tool_format_name
from .base import ToolFormat
from .card import CardFormat
from .native import NativeFormat

_REGISTRY: dict[str, ToolFormat] = {fmt.name: fmt for fmt in (CardFormat(), NativeFormat())}


def register(fmt: ToolFormat) -> ToolFormat:
    """Make `fmt` available by its name (a name already taken is an error)."""
    if not fmt.name or fmt.name in _REGISTRY:
        raise ValueError(f"a tool format needs a new name, got {fmt.name!r} (taken: {sorted(_REGISTRY)})")
    _REGISTRY[fmt.name] = fmt
    add_tool_format_name(fmt.name)
    return fmt


def get_format(name: str) -> ToolFormat:
    """The format registered as `name`; a ValueError naming the known ones otherwise."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown tool format {name!r}: expected one of {format_names()}") from None


def format_names() -> list[str]:
    """The names of the registered formats, the built-in ones first."""
    return list(_REGISTRY)

