"""`ondevice bench speed`'s placement modes, on the stand-in: each mode runs in its own child processes and
reports where the weights went; the old default is llama.cpp's whole list (ONDEVICE_AMX=1)."""

from __future__ import annotations

from ondevice.engine import hardware
from ondevice.models.assets import standin_gguf_path
from ondevice_bench.placement import MODES, format_placements, measure_placements


def test_each_placement_mode_decodes_in_its_own_process(ondevice_home):
    result = measure_placements(standin_gguf_path(), threads=1, n_ctx=512, decode_tokens=4, repeats=1)
    modes = result["modes"]
    assert set(modes) == set(MODES)
    assert modes["chosen"]["avoided"] == (["AMX"] if "AMX" in hardware.builtin_extra_buffer_types() else [])
    assert modes["old-default"]["extra_buffer_types"] == hardware.builtin_extra_buffer_types()
    assert all(m["decode_tok_s"] and m["decode_tok_s"] > 0 and not m["crashed"] for m in modes.values()), modes
    assert result["decode_vs_chosen"]["chosen"] == 1.0
    table = format_placements("standin", result)
    assert table.count("\n| ") == 1 + len(MODES)  # the header's separator row and one row per mode
