"""A small MCP server for the tests, on stdio, written with the SDK's own server class: a tool that
answers, a tool that raises (the server reports it as an error result, its message kept: a ToolError;
the SDK hides any other exception's message), and one with structured output.

    python tests/run/mcp_server.py        # speaks MCP on stdin/stdout until stdin closes
    python tests/run/mcp_server.py --relaxed-tool   # + a tool with a keyword the grammar relaxes
"""

from __future__ import annotations

import sys
from typing import Annotated

from pydantic import Field

try:
    from mcp.server.mcpserver import MCPServer as Server  # mcp 2.x
    from mcp.server.mcpserver.exceptions import ToolError
except ImportError:  # mcp 1.x calls it FastMCP
    from mcp.server.fastmcp import FastMCP as Server  # type: ignore[no-redef]
    from mcp.server.fastmcp.exceptions import ToolError  # type: ignore[no-redef]

server = Server("ondevice-test")

# Stock prices of a made-up exchange: the answer the model can only get by calling the tool.
PRICES = {"ACME": 123.25, "GLOBEX": 88.5}


@server.tool()
def get_stock_price(symbol: str) -> str:
    """The latest price of a stock, by its ticker symbol (e.g. ACME)."""
    symbol = symbol.strip().upper()
    if symbol not in PRICES:
        raise ToolError(f"unknown symbol {symbol!r}; known: {', '.join(sorted(PRICES))}")
    return f"{symbol} trades at {PRICES[symbol]} USD"


@server.tool()
def fail_always(reason: str) -> str:
    """A tool that always fails (the tests' error path)."""
    raise ToolError(f"the warehouse is closed: {reason}")


@server.tool()
def inventory(item: str) -> dict:
    """How many of an item are in stock, as a structured result."""
    return {"item": item, "count": 7}


if "--relaxed-tool" in sys.argv:
    # Keys of at most 8 lowercase letters: a key schema of two keywords, which the grammar relaxes
    # (checked after decoding instead).
    @server.tool()
    def tag_item(item: str, tags: Annotated[dict[str, str], Field(
            json_schema_extra={"propertyNames": {"pattern": "^[a-z]+$", "maxLength": 8}})]) -> str:
        """Tag an item with name/value labels."""
        return f"{item} tagged with {len(tags)} labels"


if __name__ == "__main__":
    server.run()
