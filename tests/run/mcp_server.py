"""A small MCP server for the tests, on stdio, written with the SDK's own server class: a tool that
answers, a tool that raises (the server reports it as an error result, its message kept: a ToolError;
the SDK hides any other exception's message), and one with structured output.

    python tests/run/mcp_server.py        # speaks MCP on stdin/stdout until stdin closes
"""

from __future__ import annotations

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


if __name__ == "__main__":
    server.run()
