"""The tags around tool calls, as every format writes and reads them (the grammar, the parsers and the
server's stream reader all use these)."""

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
OPEN = TOOL_CALL_OPEN + "["  # the card's constrained answer is exactly OPEN + calls + CLOSE
CLOSE = "]" + TOOL_CALL_CLOSE
