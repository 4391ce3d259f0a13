"""Quantize a GGUF with llama.cpp's own quantizer (bound by llama-cpp-python), with a progress bar."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ondevice.paths import atomic_path

from .errors import ConversionError, MissingFileError, UnknownQuantError


@dataclass(frozen=True)
class QuantType:
    name: str
    ftype: int  # llama_ftype
    bits_per_weight: float  # llama.cpp's figure for a 7B Llama, for orientation
    description: str


# llama.cpp's quantization presets offered by `ondevice convert --quant` (llama_ftype values).
QUANT_TYPES: dict[str, QuantType] = {q.name: q for q in [
    QuantType("Q8_0", 7, 8.50, "8-bit, nearly lossless, largest"),
    QuantType("Q6_K", 18, 6.56, "6-bit K-quant, very small loss"),
    QuantType("Q5_K_M", 17, 5.67, "5-bit K-quant mix, small loss"),
    QuantType("Q5_K_S", 16, 5.52, "5-bit K-quant"),
    QuantType("Q5_0", 8, 5.50, "5-bit legacy"),
    QuantType("Q4_K_M", 15, 4.89, "4-bit K-quant mix, the usual default"),
    QuantType("Q4_K_S", 14, 4.58, "4-bit K-quant"),
    QuantType("Q4_0", 2, 4.50, "4-bit legacy, fastest on some CPUs"),
    QuantType("Q4_1", 3, 5.00, "4-bit legacy with offsets"),
    QuantType("Q3_K_M", 12, 3.91, "3-bit K-quant mix, noticeable loss"),
    QuantType("Q2_K", 10, 3.35, "2-bit K-quant, large loss"),
]}
# Unquantized file types a converted GGUF can have, for general.file_type checks.
FLOAT_FTYPES = {"F32": 0, "F16": 1, "BF16": 32}

# llama.cpp keeps up to this many bytes of tensor rows in memory while quantizing (its default is
# 8 GiB). 256 MiB cut the quantizer's peak RSS on the Llama-3.2-1B shape from 1.8 GiB to 0.8 GiB
# with no loss of speed on 2 cores.
QUANT_BUFFER_BYTES = 256 * 1024 * 1024

_PROGRESS = re.compile(rb"\[\s*(\d+)\s*/\s*(\d+)\s*\]\s+(\S+)")


def quant_type(name: str) -> QuantType:
    key = name.upper()
    if key not in QUANT_TYPES:
        raise UnknownQuantError(f"expected --quant one of {', '.join(QUANT_TYPES)}, got {name!r}")
    return QUANT_TYPES[key]


class _Progress:
    """llama.cpp's quantizer log, line by line: drives a progress bar, keeps the lines for errors."""

    def __init__(self, progress: bool, label: str):
        self.progress = progress
        self.label = label
        self.lines: list[str] = []
        self.bar = None

    def feed(self, line: bytes) -> None:
        self.lines.append(line.decode("utf-8", "replace").rstrip("\n"))
        m = _PROGRESS.search(line)
        if m and self.progress:
            i, n = int(m.group(1)), int(m.group(2))
            if self.bar is None:
                from tqdm import tqdm
                self.bar = tqdm(total=n, desc=self.label, unit="tensor", file=sys.stderr, leave=True)
            self.bar.n = i
            self.bar.set_postfix_str(m.group(3).decode("utf-8", "replace")[:32], refresh=False)
            self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def quantize(src_gguf: Path, dst_gguf: Path, quant: str, nthread: Optional[int] = None,
             progress: bool = True) -> int:
    """Quantize src_gguf (F32/F16/BF16) to dst_gguf with llama.cpp; atomic. Returns the new size.

    llama.cpp's quantizer cannot be cancelled from inside, and an interrupt raised in a Python log
    callback is swallowed by ctypes; so it runs in a child process (convert/quantize_worker.py) in
    its own session, which Ctrl-C here kills at once: KeyboardInterrupt, no file left behind.
    """
    qt = quant_type(quant)
    src_gguf, dst_gguf = Path(src_gguf), Path(dst_gguf)
    if not src_gguf.is_file():
        raise MissingFileError(f"expected a GGUF to quantize at {src_gguf}, it is missing")
    threads = nthread or os.cpu_count() or 1
    log = _Progress(progress, f"quantize {qt.name}")
    with atomic_path(dst_gguf) as tmp:
        try:
            rc = _run_worker([str(src_gguf), str(tmp), str(qt.ftype), str(threads), str(QUANT_BUFFER_BYTES)], log)
        finally:
            log.close()
        if rc != 0:
            tail = "\n".join(l for l in log.lines[-8:] if l.strip())
            raise ConversionError(f"llama.cpp could not quantize {src_gguf.name} to {qt.name} (code {rc})",
                                  details=tail)
    return dst_gguf.stat().st_size


def _run_worker(argv: list[str], log: _Progress) -> int:
    worker = Path(__file__).resolve().with_name("quantize_worker.py")  # a script: it imports no package of ours
    proc = subprocess.Popen([sys.executable, str(worker), *argv], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)  # the terminal's Ctrl-C reaches us, not it
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            log.feed(line)
        return proc.wait()
    finally:
        if proc.poll() is None:  # interrupted (or failed) here: stop the quantizer now
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def human_size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"
