"""The tool formats by name: the built-in ones, any a program registers, and any another package
declares in the ``ondevice.formats`` entry-point group (a `ToolFormat` subclass or instance,
loaded on first use)::

    [project.entry-points."ondevice.formats"]
    myformat = "my_package.my_format:MyFormat"
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

from ..settings import add_format_loader, add_tool_format_name
from .base import ToolFormat
from .card import CardFormat
from .functiongemma import FunctionGemmaFormat
from .llama3 import Llama3Format
from .ministral3 import Ministral3Format
from .mistral import MistralFormat
from .native import NativeFormat
from .phi4_mini import Phi4MiniFormat
from .pythonic import PythonicFormat
from .xlam import JsonArrayFormat

_BUILT_IN = (CardFormat(), NativeFormat(), Llama3Format(), JsonArrayFormat(), Phi4MiniFormat(), MistralFormat(),
             Ministral3Format(), PythonicFormat(), FunctionGemmaFormat())
_REGISTRY: dict[str, ToolFormat] = {fmt.name: fmt for fmt in _BUILT_IN}
ENTRY_POINT_GROUP = "ondevice.formats"
_loaded_plugins = False


def load_plugins() -> None:
    """Register the formats other packages declare under ``ondevice.formats`` (once a process). A
    plugin that fails to load is skipped with one line on stderr naming it: ondevice still works."""
    global _loaded_plugins
    if _loaded_plugins:
        return
    _loaded_plugins = True
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in _REGISTRY:
            continue
        try:
            found = point.load()
            fmt = found() if isinstance(found, type) else found
            if not isinstance(fmt, ToolFormat):
                raise TypeError(f"expected a ToolFormat subclass or instance, got {type(fmt).__name__}")
            if fmt.name != point.name:
                raise ValueError(f"the entry point is named {point.name!r} but the format {fmt.name!r}")
            register(fmt)
        except Exception as e:  # a broken plugin must not break ondevice
            print(f"ondevice: tool format plugin {point.name!r} ({point.value}) not loaded: "
                  f"{type(e).__name__}: {e}", file=sys.stderr)


add_format_loader(load_plugins)


def register(fmt: ToolFormat) -> ToolFormat:
    """Make `fmt` available by its name (a name already taken is an error)."""
    if not fmt.name or fmt.name in _REGISTRY:
        raise ValueError(f"a tool format needs a new name, got {fmt.name!r} (taken: {sorted(_REGISTRY)})")
    _REGISTRY[fmt.name] = fmt
    add_tool_format_name(fmt.name)
    return fmt


def get_format(name: str) -> ToolFormat:
    """The format registered as `name`; a ValueError naming the known ones otherwise."""
    if name not in _REGISTRY:
        load_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown tool format {name!r}: expected one of {format_names()}") from None


def format_names() -> list[str]:
    """The names of the registered formats, the built-in ones first."""
    load_plugins()
    return list(_REGISTRY)

