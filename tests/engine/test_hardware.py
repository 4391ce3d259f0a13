"""Where the weights go (hardware.py): llama.cpp's AMX buffer type is left out of every load unless
ONDEVICE_AMX=1, and a load honours the list we leave it. This host may have no AMX: the mechanism is
shown by taking out CPU_REPACK, which Qwen's Q4_K weights otherwise use, through the same path."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ondevice import Settings
from ondevice.engine import hardware
from ondevice.models.assets import standin_gguf_path
from ondevice.engine.llama import LlamaModel
from ondevice.models.catalog import resolve

from ..common import QWEN_ALIAS


def _load(path, **settings) -> dict[str, float]:
    model = LlamaModel(path, Settings(n_ctx=256, **settings))
    try:
        return dict(model.weight_buffers, _placement=model.placement)  # type: ignore[arg-type]
    finally:
        model.close()


@pytest.mark.nomodel
def test_amx_is_avoided_unless_the_user_opts_back_in(monkeypatch):
    monkeypatch.delenv(hardware.AMX_ENV, raising=False)
    assert hardware.default_avoided() == {"AMX"}
    monkeypatch.setenv(hardware.AMX_ENV, "1")
    assert hardware.default_avoided() == set()
    monkeypatch.setenv(hardware.AMX_ENV, "0")
    assert hardware.default_avoided() == {"AMX"}


def test_a_load_uses_only_the_extra_buffer_types_left_in_the_list(ondevice_home, monkeypatch):
    qwen = resolve(QWEN_ALIAS).path
    builtin = hardware.builtin_extra_buffer_types()
    assert "CPU_REPACK" in builtin, f"this llama.cpp build has no CPU_REPACK: {builtin}"
    before = _load(qwen)
    assert before["CPU_REPACK"] > 0 and "AMX" not in before
    monkeypatch.setattr(hardware, "default_avoided", lambda: frozenset({"CPU_REPACK"}))
    without = _load(qwen)
    assert "CPU_REPACK" not in without and without["_placement"].avoided == ("CPU_REPACK",)
    assert hardware.extra_buffer_types() == [b for b in builtin if b != "CPU_REPACK"]
    monkeypatch.undo()
    after = _load(qwen)  # the list is restored from llama.cpp's own at the next load
    assert after["CPU_REPACK"] == before["CPU_REPACK"]
    assert hardware.extra_buffer_types() == [b for b in builtin if b != "AMX"]


@pytest.mark.nomodel
@pytest.mark.skipif(not hardware.has_amx(), reason="this CPU has no AMX (lscpu: no amx_int8)")
def test_on_an_amx_host_the_weights_avoid_amx_and_opting_in_puts_them_back(ondevice_home, monkeypatch):
    path = standin_gguf_path()  # Q4_1: the type llama.cpp's AMX path repacked before it crashed
    monkeypatch.delenv(hardware.AMX_ENV, raising=False)
    assert "AMX" not in _load(path)
    if "AMX" in hardware.builtin_extra_buffer_types():
        monkeypatch.setenv(hardware.AMX_ENV, "1")
        assert "AMX" in _load(path)  # loading only: decoding with it is what crashes


@pytest.mark.nomodel
def test_cpu_flags_are_read_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 amx_bf16 amx_tile amx_int8\n")
    assert hardware.has_amx(hardware.cpu_flags(info))
    info.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 avx512f\n")
    assert not hardware.has_amx(hardware.cpu_flags(info))
    assert hardware.cpu_flags(tmp_path / "missing") == set()


@pytest.mark.nomodel
def test_weight_buffers_are_read_from_the_load_log():
    log = ["load_tensors:   CPU_Mapped model buffer size =   462.96 MiB\n",
           "load_tensors:          AMX model buffer size =    95.34 MiB\n", "llama_context: n_ctx = 256\n"]
    assert hardware.weight_buffers(log) == {"CPU_Mapped": 462.96, "AMX": 95.34}


CHILD = """
import sys
from ondevice import ToolCaller
from ondevice_bench.examples import card_examples
ex = card_examples(1)[0]
with ToolCaller.load(sys.argv[1]) as caller:  # the default settings: repack on, the chosen placement
    result = caller.call(ex["query"], ex["tools"])
    print("buffers", caller.model.weight_buffers, "calls", result.calls is not None)
"""


@pytest.mark.parametrize("which", ["standin", "qwen"])
def test_default_settings_load_and_decode_in_a_child_process(which, ondevice_home):
    """A crash in llama.cpp (as on AMX hosts before) fails this one test with the signal, not the run."""
    path = standin_gguf_path() if which == "standin" else resolve(QWEN_ALIAS).path
    r = subprocess.run([sys.executable, "-c", CHILD, str(path)], capture_output=True, text=True, timeout=300,
                       env=dict(os.environ))
    if r.returncode < 0:
        pytest.fail(f"the default load and decode of {path.name} died with signal {-r.returncode} "
                    f"(run `ondevice doctor`): {r.stderr[-1500:]}")
    assert r.returncode == 0, r.stderr[-1500:]
    assert "calls True" in r.stdout and "AMX" not in r.stdout


def test_ondevice_reaches_the_ggml_that_libllama_uses():
    """A wheel holds libggml.so and libggml.so.0 as two files, and each, loaded, has its own backend registry.
    libllama links the second (by its soname): the functions ondevice calls must be that copy's, or a
    portable build's CPU backend lands in a registry libllama never sees (no model loads)."""
    import ctypes
    import llama_cpp.llama_cpp as binding

    ours = hardware._library_of(ctypes.cast(hardware._g.reg_count, ctypes.c_void_p).value)
    if ours is None:
        pytest.skip("dladdr is not available here to tell which library a function lives in")
    assert ours.name != "libggml.so" or sys.platform != "linux", ours  # the copy libllama does not use
    system = binding.llama_print_system_info().decode()
    assert "CPU : " in system  # libllama sees the CPU backend that ondevice found
    backend = hardware.cpu_backend()
    assert backend.library is not None and backend.library.name.startswith("libggml-cpu")
