"""Every error ondevice raises on bad input: one base class, each message says what to do."""

from __future__ import annotations

from typing import Optional


class OndeviceError(Exception):
    """Base class: the CLI prints these as `ondevice: error: <message>` (one line) and exits 2.

    `details` holds what only helps a bug report or an expert (an engine's parser state, a log tail):
    kept out of the message, printed by the CLI with --verbose. `is_bug`: the error means ondevice
    itself went wrong (the CLI then asks for a report and exits 1). `field`: where in the input the
    fault is, when known (``messages[0].content``); the server answers its first name as `param`.
    """

    is_bug = False

    def __init__(self, message: str = "", *, details: Optional[str] = None, field: Optional[str] = None):
        super().__init__(message)
        self.details = details
        self.field = field


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


class QueryError(OndeviceError, ValueError):
    """The query is not usable text (empty, not a string, not valid UTF-8)."""


class EmptyQueryError(QueryError):
    """The query is empty or only whitespace."""


class AssetError(OndeviceError, RuntimeError):
    """A pinned asset (stand-in model, tokenizer) is missing or fails its checksum."""


class SettingsError(OndeviceError, ValueError):
    """A setting is out of range, unknown, or cannot change per call."""


class ChatTemplateError(OndeviceError, ValueError):
    """A chat template is missing, does not compile, or refuses the messages."""


class GrammarStateError(OndeviceError, RuntimeError):
    """The grammar engine reached a state it should not (a bug: please report it with the tools).

    llguidance's parser state goes to `details` (the CLI prints it with --verbose), not the message."""

    is_bug = True


class DirectoryError(OndeviceError, OSError):
    """A directory ondevice writes into cannot be created or written (it is a file, or read-only)."""


class InputLimitError(OndeviceError, ValueError):
    """An input is larger or deeper than a configured limit (a `Settings` field, named in the message)."""


class JSONInputError(OndeviceError, ValueError):
    """A JSON document from outside (a request body, a tools file) is not JSON: malformed, not UTF-8,
    or holding NaN or Infinity."""


class CallerClosedError(OndeviceError, RuntimeError):
    """The ToolCaller was closed: load a new one."""


class MCPError(OndeviceError, RuntimeError):
    """An MCP server could not be configured, started, listed or called (the `mcp` extra is missing, a
    bad mcpServers config, a server that exits or times out)."""


class RelaxedCallError(OndeviceError, ValueError):
    """Every draw of a call broke a keyword the grammar does not enforce (a relaxed one, see
    docs/schemas.md): the message names the tool, the place and the keyword, and what to do."""
