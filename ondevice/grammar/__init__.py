"""The grammar an answer is decoded under: its rules and options (calls.py), and the GBNF export (export.py)."""
