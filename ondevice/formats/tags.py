"""The Hermes tags around tool calls, as the card and native formats write and read them. Nothing
outside ondevice/formats/ names them: the engine, the server and the CLI ask a format
(tests/test_format_literals.py checks)."""

TOOL_CALL_OPEN = "<tool_call>"
TOOL_CALL_CLOSE = "</tool_call>"
OPEN = TOOL_CALL_OPEN + "["  # the card's constrained answer is exactly OPEN + calls + CLOSE
CLOSE = "]" + TOOL_CALL_CLOSE
