"""Where llama.cpp puts the weights on this CPU, and what the CPU offers.

llama.cpp's CPU backend lists "extra" buffer types that a load with ``use_extra_bufts`` (our
`Settings.repack`) tries in order before the plain CPU buffer: AMX first on a build for an Intel CPU
with AMX (Sapphire Rapids and later), then CPU_REPACK (the interleaved layout, about 12% faster
decode here). On AMX hosts the AMX path segfaults at the first decode (llama.cpp #20824, Ollama
#17205/#17249), so before every load `place_weights` takes the AMX type out of that list: its
weights fall to CPU_REPACK where it supports them, else to the plain CPU buffer, as on any other
CPU. ``ONDEVICE_AMX=1`` puts it back (for a llama.cpp build where the defect is fixed).

The list is the NULL-terminated array that the CPU backend's ``ggml_backend_dev_get_extra_bufts``
returns (a static array inside libggml-cpu, read afresh by each load), reached through the backend
registry, so it works with a native build and with a portable one (GGML_BACKEND_DL, the CPU variant
chosen at run time). We only ever write a subset of the original entries, in their order, into it.
"""

from __future__ import annotations

import ctypes
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

import llama_cpp
from llama_cpp._ggml import libggml as _g

AMX_ENV = "ONDEVICE_AMX"
AMX_BUFFER = "AMX"
DEVICE_CPU = 0  # GGML_BACKEND_DEVICE_TYPE_CPU

_g.ggml_backend_dev_by_type.restype = ctypes.c_void_p
_g.ggml_backend_dev_by_type.argtypes = [ctypes.c_int]
_g.ggml_backend_dev_backend_reg.restype = ctypes.c_void_p
_g.ggml_backend_dev_backend_reg.argtypes = [ctypes.c_void_p]
_g.ggml_backend_reg_get_proc_address.restype = ctypes.c_void_p
_g.ggml_backend_reg_get_proc_address.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_g.ggml_backend_buft_name.restype = ctypes.c_char_p
_g.ggml_backend_buft_name.argtypes = [ctypes.c_void_p]
_g.ggml_backend_reg_count.restype = ctypes.c_size_t
_g.ggml_backend_reg_count.argtypes = []
_g.ggml_backend_load_all_from_path.restype = None
_g.ggml_backend_load_all_from_path.argtypes = [ctypes.c_char_p]

_GET_EXTRA = ctypes.CFUNCTYPE(ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p)
_LOCK = threading.Lock()
_ORIGINAL: dict[int, list[int]] = {}  # address of llama.cpp's array -> its entries as built


@dataclass(frozen=True)
class Placement:
    """What the next load may use: `kept` extra buffer types in the order llama.cpp tries them,
    `avoided` the ones taken out (names as llama.cpp logs them: AMX, CPU_REPACK, ...)."""

    kept: tuple[str, ...]
    avoided: tuple[str, ...]
    repack: bool


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The CPU's feature flags (Linux /proc/cpuinfo; empty where it cannot be read)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return set()
    match = re.search(r"^(?:flags|Features)\s*:(.*)$", text, re.MULTILINE)
    return set(match.group(1).split()) if match else set()


def has_amx(flags: Optional[set[str]] = None) -> bool:
    """Whether this CPU has Intel AMX (the tiles llama.cpp's AMX buffer type computes with)."""
    flags = cpu_flags() if flags is None else flags
    return "amx_int8" in flags or "amx_tile" in flags


def amx_allowed() -> bool:
    """Whether the user opted back in to llama.cpp's AMX buffer type (ONDEVICE_AMX=1)."""
    return os.environ.get(AMX_ENV, "").strip() == "1"


def ensure_backends() -> None:
    """Make sure a CPU backend is registered. A portable build (GGML_BACKEND_DL) keeps its CPU variants
    as separate libraries that llama.cpp looks for beside the executable (python) and in the current
    folder; this also looks where the wheel installed them."""
    if not _g.ggml_backend_reg_count():
        llama_cpp.llama_backend_init()
    if _g.ggml_backend_dev_by_type(DEVICE_CPU):
        return
    package = Path(llama_cpp.__file__).resolve().parent
    for folder in (package / "lib", package.parent / "bin", package.parent.parent / "bin"):
        if folder.is_dir():
            _g.ggml_backend_load_all_from_path(str(folder).encode())
            if _g.ggml_backend_dev_by_type(DEVICE_CPU):
                return


def _extra_array() -> Optional[ctypes.Array]:
    """llama.cpp's NULL-terminated array of the CPU's extra buffer types (None: this build has none)."""
    dev = _g.ggml_backend_dev_by_type(DEVICE_CPU)
    if not dev:
        return None
    reg = _g.ggml_backend_dev_backend_reg(dev)
    fn = _g.ggml_backend_reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts") if reg else None
    if not fn:
        return None
    ptr = _GET_EXTRA(fn)(dev)
    if not ptr:
        return None
    address = ctypes.cast(ptr, ctypes.c_void_p).value or 0
    if address not in _ORIGINAL:
        entries = []
        while ptr[len(entries)]:
            entries.append(ptr[len(entries)])
        _ORIGINAL[address] = entries
    return (ctypes.c_void_p * (len(_ORIGINAL[address]) + 1)).from_address(address)


def _name(buft: int) -> str:
    return (_g.ggml_backend_buft_name(buft) or b"?").decode("utf-8", errors="replace")


def builtin_extra_buffer_types() -> list[str]:
    """The extra buffer types this llama.cpp build offers, as it built the list (AMX included)."""
    ensure_backends()
    with _LOCK:
        array = _extra_array()
        return [_name(b) for b in _ORIGINAL.get(ctypes.addressof(array), [])] if array is not None else []


def extra_buffer_types() -> list[str]:
    """The extra buffer types the next load with repack will try, in order (after `place_weights`)."""
    ensure_backends()
    with _LOCK:
        array = _extra_array()
        return [] if array is None else [_name(b) for b in array if b]


def default_avoided() -> frozenset[str]:
    """The extra buffer types ondevice keeps weights out of by default: AMX, unless ONDEVICE_AMX=1."""
    return frozenset() if amx_allowed() else frozenset({AMX_BUFFER})


def place_weights(repack: bool = True, avoid: Optional[Iterable[str]] = None) -> Placement:
    """Set the extra buffer types that the next model load considers: llama.cpp's own list without
    those in `avoid` (default: `default_avoided()`). Called before every load (`LlamaModel`)."""
    avoid = default_avoided() if avoid is None else frozenset(avoid)
    ensure_backends()
    with _LOCK:
        array = _extra_array()
        if array is None:
            return Placement((), (), repack)
        original = _ORIGINAL[ctypes.addressof(array)]
        kept = [b for b in original if _name(b) not in avoid]
        for i in range(len(original) + 1):  # never past the array's own terminator
            array[i] = kept[i] if i < len(kept) else None
        return Placement(tuple(_name(b) for b in kept), tuple(_name(b) for b in original if _name(b) in avoid), repack)


_BUFFER_LINE = re.compile(r"load_tensors:\s+(\S+) model buffer size\s*=\s*([0-9.]+) MiB")


def weight_buffers(log_lines: Sequence[str]) -> dict[str, float]:
    """Which buffer types a load put weights in, MiB each, read from llama.cpp's load log
    ("load_tensors: CPU_REPACK model buffer size = 95.34 MiB")."""
    found: dict[str, float] = {}
    for line in log_lines:
        for name, mib in _BUFFER_LINE.findall(line):
            found[name] = found.get(name, 0.0) + float(mib)
    return found


def system_info() -> str:
    """llama.cpp's own summary of its build: the CPU features it was compiled for (AMX_INT8 = 1, ...)."""
    ensure_backends()
    raw = llama_cpp.llama_print_system_info()
    return raw.decode("utf-8", errors="replace").strip() if raw else ""


def gpu_offload() -> bool:
    """Whether this llama-cpp-python build can offload layers to a GPU (Metal, CUDA, Vulkan...)."""
    ensure_backends()
    return bool(llama_cpp.llama_supports_gpu_offload())
