"""Every error ondevice raises on bad input: one base class, each message says what to do."""

from __future__ import annotations


class OndeviceError(Exception):
    """Base class: the CLI prints these as `ondevice: error: <message>` and exits 2."""


class ToolSchemaError(OndeviceError, ValueError):
    """A tool definition is malformed or uses a JSON Schema keyword we cannot enforce."""


class ToolChoiceError(OndeviceError, ValueError):
    """A tool choice the grammar cannot honour (no tools to call, a name that is not a tool, bad bounds)."""


class BudgetError(OndeviceError, ValueError):
    """The token budget ran out before the calls the grammar requires (tool_choice "required") were complete."""


class ModelNotFoundError(OndeviceError, FileNotFoundError):
    """A model spec names no file, alias or cached hub repo."""


class ModelFileError(OndeviceError, ValueError):
    """A model file exists but is not a loadable GGUF (corrupt, truncated, wrong format)."""


class ContextOverflowError(OndeviceError, ValueError):
    """The prompt does not fit in the context window."""


class EmptyQueryError(OndeviceError, ValueError):
    """The query is empty or only whitespace."""


class AssetError(OndeviceError, RuntimeError):
    """A pinned asset (stand-in model, tokenizer) is missing or fails its checksum."""
