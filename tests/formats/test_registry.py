"""Tool formats are objects registered by name: the engine, the server and the CLI never ask which
one they have, so a format registered from outside decodes like a built-in one."""

from __future__ import annotations

import pytest

from ondevice import Settings
from ondevice.errors import SettingsError
from ondevice.formats import format_names, get_format, register
from ondevice.formats.card import CardFormat

from ..common import load_example


class CardCopy(CardFormat):
    """A third format: the card's layout under another name (what a new module would subclass)."""

    name = "card-copy-test"


@pytest.mark.nomodel
def test_unknown_and_duplicate_names_are_clear_errors():
    assert {"card", "native"} <= set(format_names())
    with pytest.raises(ValueError, match="unknown tool format 'nope': expected one of"):
        get_format("nope")
    with pytest.raises(ValueError, match="needs a new name, got 'card'"):
        register(CardFormat())
    with pytest.raises(SettingsError, match="tool_format: expected None or one of"):
        Settings(tool_format="card-copy-unregistered")


def test_a_registered_format_decodes_like_the_built_in_one(caller):
    if CardCopy.name not in format_names():
        register(CardCopy())
    tools, case = load_example("simple")
    query = case["queries"][0]
    copied = caller.call(query, tools, settings=caller.settings.with_(tool_format=CardCopy.name))
    builtin = caller.call(query, tools)
    assert copied.text == builtin.text and copied.calls == builtin.calls
