"""The caller's tools: normalized (tools.py), checked (limits.py, json_value.py, refs.py), and
rewritten into what the grammar enforces (grammar_schema.py)."""
