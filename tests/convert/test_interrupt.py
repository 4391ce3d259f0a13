"""Ctrl-C during quantization (llama.cpp's C code, in a child process) stops `ondevice convert` at once:
exit 130, no quantized file and no temp file left; file modes follow the umask."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ondevice_convert import convert_checkpoint

from .conftest import sigint_as_usual


@pytest.mark.slow
def test_sigint_during_quantization(tmp_path: Path, tokenizer_dir: Path) -> None:
    from ondevice_bench.fixtures.synthetic import tiny_config, write_random_checkpoint

    ckpt = write_random_checkpoint(tmp_path / "wide", tiny_config(hidden_size=1024, intermediate_size=4096,
                                                                   num_attention_heads=16, num_key_value_heads=4),
                                   seed=0, tokenizer_dir=tokenizer_dir)
    out = tmp_path / "out"
    convert_checkpoint(ckpt, out, quant=None, progress=False)  # the F16 file: the next run only quantizes
    before = sorted(p.name for p in out.iterdir())
    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
    proc = subprocess.Popen([sys.executable, "-m", "ondevice", "convert", str(ckpt), "--quant", "Q4_K_M",
                             "--out", str(out), "--threads", "1"], env=env, stderr=subprocess.PIPE, text=True,
                            preexec_fn=sigint_as_usual)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.glob(".*Q4_K_M*.part")):
        time.sleep(0.02)
    assert list(out.glob(".*Q4_K_M*.part")), "quantization never started"
    time.sleep(1.0)  # well inside llama.cpp's quantizer
    assert proc.poll() is None, "quantization finished before it could be interrupted"
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    took = time.monotonic() - sent
    print(f"stopped {took:.2f} s after SIGINT")
    assert proc.returncode == 130, err
    assert err.rstrip().endswith("ondevice: interrupted")
    assert took < 3.0, f"took {took:.2f} s to stop"  # about 0.1 s on an idle machine
    assert sorted(p.name for p in out.iterdir()) == before  # no .part, no Q4_K_M file


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_follow_the_umask(tiny_ckpt: Path, tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        result = convert_checkpoint(tiny_ckpt, tmp_path, quant="Q4_0", progress=False)
    finally:
        os.umask(old)
    for path in result.paths.values():
        assert path.stat().st_mode & 0o777 == 0o666 & ~umask, path


def test_a_foreign_file_under_the_output_name_is_not_replaced(tiny_ckpt: Path, tmp_path: Path) -> None:
    from ondevice_convert import ConversionError

    theirs = tmp_path / "tiny-llama.Q4_0.gguf"
    theirs.write_bytes(b"someone else's model")
    with pytest.raises(ConversionError, match="was not written by ondevice convert"):
        convert_checkpoint(tiny_ckpt, tmp_path, quant="Q4_0", progress=False)
    assert theirs.read_bytes() == b"someone else's model"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-llama.Q4_0.gguf"]


def test_no_keep_float_never_deletes_a_foreign_float_file(tiny_ckpt: Path, tmp_path: Path) -> None:
    convert_checkpoint(tiny_ckpt, tmp_path, quant="Q4_0", keep_float=False, progress=False)
    theirs = tmp_path / "tiny-llama.F16.gguf"
    theirs.write_bytes(b"my own float file")
    convert_checkpoint(tiny_ckpt, tmp_path, quant="Q4_0", keep_float=False, progress=False)  # Q4_0 up to date
    assert theirs.read_bytes() == b"my own float file"
