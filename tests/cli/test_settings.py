"""Settings: load-time fields are fixed, per-call fields change one call; the CLI's defaults are Settings'."""

from __future__ import annotations

import pytest

from ondevice import Settings, SettingsError
from ondevice.cli import build_parser
from ondevice.settings import LOAD_TIME_FIELDS, PER_CALL_FIELDS


@pytest.mark.nomodel
def test_every_field_is_load_time_or_per_call():
    from dataclasses import fields

    names = {f.name for f in fields(Settings)}
    assert LOAD_TIME_FIELDS | PER_CALL_FIELDS == names and not LOAD_TIME_FIELDS & PER_CALL_FIELDS
    assert {"n_ctx", "n_threads", "n_gpu_layers", "chat_template", "prefix_cache_mb"} <= LOAD_TIME_FIELDS


@pytest.mark.parametrize("change", [{"n_ctx": 2048}, {"n_threads": 3}, {"chat_template": "{{ x }}"},
                                    {"prefix_cache_entries": 1}])
def test_a_per_call_change_of_a_load_time_setting_is_an_error(caller, change):
    name = next(iter(change))
    with pytest.raises(SettingsError, match=f"{name}: loaded with"):
        caller.call("Hello", None, settings=caller.settings.with_(**change))


DATED_TEMPLATE = "{% for m in messages %}{{ m.content }}\n{% endfor %}Today Date: {{ date_string }}\n"


def test_a_per_call_date_string_is_honoured(standin_path):
    from ondevice import ToolCaller

    def evaluated(c: ToolCaller) -> str:
        return c.model.detokenize(c.model.tokens).decode("utf-8", errors="replace")

    settings = Settings(n_ctx=1024, max_tokens=1, date_string="26 Jul 2024", chat_template=DATED_TEMPLATE)
    with ToolCaller.load(str(standin_path), settings) as c:
        c.call("Hello")
        assert "Today Date: 26 Jul 2024" in evaluated(c)
        c.call("Hello", settings=c.settings.with_(date_string="01 Jan 2026"))
        assert "Today Date: 01 Jan 2026" in evaluated(c) and "26 Jul 2024" not in evaluated(c)


@pytest.mark.nomodel
def test_the_cli_defaults_are_the_settings_defaults():
    args = build_parser().parse_args(["call", "Hello"])
    d = Settings()
    assert (args.n_ctx, args.threads, args.n_gpu_layers, args.temperature, args.seed, args.max_tokens) == (
        d.n_ctx, d.n_threads, d.n_gpu_layers, d.temperature, d.seed, d.max_tokens)
