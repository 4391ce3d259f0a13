"""The model's chat template rendered as its own Jinja does (chat_template.py), control tokens taken
only from the template's markup (control_tokens.py)."""
