"""The `repack` setting: llama.cpp's interleaved CPU copy of the weights, on for long-lived processes and
off for the one-shot `ondevice call` (where loading fast beats decoding faster). Qwen's Q4_K tensors are
ones llama.cpp repacks; the stand-in's Q4_1 are not."""

from __future__ import annotations

import collections

import pytest

from ondevice import Settings
from ondevice.engine import llama
from ondevice.cli import build_parser
from ondevice.errors import SettingsError
from ondevice.models.catalog import resolve
from ondevice.settings import LOAD_TIME_FIELDS

from ..common import QWEN_ALIAS


def _repack_log_after_load(repack: bool, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.setattr(llama, "_LOG_LINES", collections.deque())  # all of llama.cpp's log, not the last 50 lines
    model = llama.LlamaModel(resolve(QWEN_ALIAS).path, Settings(n_ctx=256, repack=repack).load)
    try:
        return [line for line in llama._LOG_LINES if "repack" in line.lower()]
    finally:
        model.close()


def test_repack_decides_whether_llama_cpp_copies_the_weights(ondevice_home, monkeypatch):
    assert _repack_log_after_load(True, monkeypatch), "expected llama.cpp to repack Qwen's Q4_K weights"
    assert _repack_log_after_load(False, monkeypatch) == []


@pytest.mark.nomodel
def test_the_one_shot_call_loads_without_repacking_and_the_others_with():
    parser = build_parser()
    assert parser.parse_args(["call", "q"]).repack is False
    assert parser.parse_args(["call", "q", "--repack"]).repack is True
    assert parser.parse_args(["chat"]).repack is True
    assert parser.parse_args(["chat", "--no-repack"]).repack is False
    assert Settings().repack is True and "repack" in LOAD_TIME_FIELDS


@pytest.mark.nomodel
def test_repack_must_be_a_bool():
    with pytest.raises(SettingsError, match="setting repack: expected True or False, got 'no'"):
        Settings(repack="no")
