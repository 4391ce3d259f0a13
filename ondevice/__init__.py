"""ondevice: offline tool calling with guaranteed-valid ``<tool_call>[...]</tool_call>`` output on llama.cpp."""

# First, before any module that loads llama.cpp: libgomp reads how its threads wait once, when it loads.
from . import wait_policy  # noqa: F401  (isort: skip)
from .api import CallResult, Conversation, RunResult, Step, ToolCaller
from .errors import (
    ChatTemplateError,
    ContextOverflowError,
    GrammarStateError,
    MCPError,
    EmptyQueryError,
    ModelFileError,
    ModelNotFoundError,
    OndeviceError,
    SettingsError,
    ToolSchemaError,
)
from .formats.blocks import ToolCall, parse_response, parse_tool_calls, validate_calls
from .formats.card import SYSTEM_PROMPT
from .formats.prompt import prepare_messages
from .mcp_client import MCPServers
from .settings import Settings
from .schema.functions import tool_from_function
from .schema.tools import Tool, normalize_tools, to_json_schema

__version__ = "0.1.0"

__all__ = [
    "CallResult", "Conversation", "ToolCaller", "validate_calls", "ToolCall", "parse_response",
    "parse_tool_calls", "SYSTEM_PROMPT", "prepare_messages", "Settings", "Tool", "normalize_tools",
    "to_json_schema", "OndeviceError", "ToolSchemaError", "ModelNotFoundError", "ModelFileError",
    "ContextOverflowError", "EmptyQueryError", "SettingsError", "ChatTemplateError", "GrammarStateError",
    "RunResult", "Step", "MCPServers", "MCPError", "tool_from_function",
]
