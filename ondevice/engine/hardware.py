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
registry. We only ever write a subset of the original entries, in their order, into it.

Which registry: the one libllama uses. A wheel holds no symlinks, so llama-cpp-python's lib folder holds
libggml.so and libggml.so.0 as two files: libllama loads libggml.so.0 (its soname), while
``llama_cpp._ggml`` opens libggml.so by its path, a second copy of ggml with a backend registry of its own.
In a native build both copies register the same libggml-cpu when they load; in a portable build
(GGML_BACKEND_DL) the CPU backend is a module that only a ``ggml_backend_load*`` call registers, in the
copy it is called on, and one loaded into ``llama_cpp._ggml``'s copy leaves libllama with no backend (an
empty system line, every model load refused). So every ggml function here is looked up through
libllama's own handle, whose symbol search follows its dependencies to the ggml it was linked with.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional, Sequence

import llama_cpp
import llama_cpp.llama_cpp as _binding

AMX_ENV = "ONDEVICE_AMX"
AMX_BUFFER = "AMX"
DEVICE_CPU = 0  # GGML_BACKEND_DEVICE_TYPE_CPU


def _ggml_library() -> ctypes.CDLL:
    """The library to look ggml's functions up in: libllama, whose dlsym finds the ggml it links (see the
    module's docstring); llama-cpp-python's own libggml handle where a platform's lookup does not follow
    dependencies (Windows)."""
    try:
        _binding._lib.ggml_backend_reg_count  # noqa: B018 (resolves the symbol or raises)
        return _binding._lib
    except AttributeError:
        from llama_cpp._ggml import libggml

        return libggml


def _function(name: str, restype: Any, *argtypes: Any) -> Any:
    """A ctypes function of our own for ggml's `name` (llama-cpp-python's shared objects left untouched)."""
    return ctypes.CFUNCTYPE(restype, *argtypes)((name, _ggml_library()))


class _g:  # noqa: N801 (a namespace)
    """The ggml backend-registry functions ondevice calls, bound to libllama's ggml."""

    dev_by_type = _function("ggml_backend_dev_by_type", ctypes.c_void_p, ctypes.c_int)
    dev_backend_reg = _function("ggml_backend_dev_backend_reg", ctypes.c_void_p, ctypes.c_void_p)
    reg_get_proc_address = _function("ggml_backend_reg_get_proc_address", ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p)
    buft_name = _function("ggml_backend_buft_name", ctypes.c_char_p, ctypes.c_void_p)
    reg_count = _function("ggml_backend_reg_count", ctypes.c_size_t)
    load_all_from_path = _function("ggml_backend_load_all_from_path", None, ctypes.c_char_p)

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


def backend_folders() -> list[Path]:
    """Where a llama-cpp-python wheel puts llama.cpp's backend libraries: a portable build's CPU variants
    (libggml-cpu-<variant>.so, GGML_BACKEND_DL) go to site-packages/bin, the rest to llama_cpp/lib."""
    package = Path(llama_cpp.__file__).resolve().parent
    candidates = (package.parent / "bin", package / "lib", package.parent.parent / "bin")
    return [folder for folder in candidates if folder.is_dir()]


def ensure_backends() -> bool:
    """Make sure llama.cpp has a CPU backend registered; False when none could be loaded. A native build
    registers it when libggml loads; a portable build (GGML_BACKEND_DL) keeps its CPU variants as
    separate libraries, and llama.cpp looks for them only beside the executable (python) and in the
    current folder, so this loads the best variant from where the wheel installed them."""
    with _LOCK:
        if _g.dev_by_type(DEVICE_CPU):
            return True
        for folder in backend_folders():
            _g.load_all_from_path(str(folder).encode())
            if _g.dev_by_type(DEVICE_CPU):
                return True
        return False


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def _library_of(address: int) -> Optional[Path]:
    """The shared library that holds `address` (dladdr), or None where it cannot be told."""
    for name in (None, ctypes.util.find_library("dl")):
        try:
            dladdr = ctypes.CDLL(name).dladdr
        except (OSError, AttributeError, TypeError):
            continue
        dladdr.argtypes = [ctypes.c_void_p, ctypes.POINTER(_DlInfo)]
        dladdr.restype = ctypes.c_int
        info = _DlInfo()
        if dladdr(address, ctypes.byref(info)) and info.dli_fname:
            return Path(os.fsdecode(info.dli_fname))
    return None


@dataclass(frozen=True)
class CpuBackend:
    """Which library llama.cpp's CPU backend came from (None: no CPU backend is loaded) and, for a
    portable build, the CPU variants it was chosen among; `searched`: where ondevice looked."""

    library: Optional[Path]
    variants: tuple[str, ...]
    searched: tuple[Path, ...]

    def describe(self) -> str:
        """One line: 'libggml-cpu-zen4.so (portable build: the best of 13 CPU variants ...) in /.../bin'."""
        if self.library is None:
            where = ", ".join(str(f) for f in self.searched) or "(llama-cpp-python has no backend folder)"
            return f"none loaded (looked in {where})"
        if self.variants:
            return (f"{self.library.name} (portable build: the best of {len(self.variants)} CPU variants for this CPU: "
                    f"{', '.join(self.variants)}) in {self.library.parent}")
        return f"{self.library.name} (a single CPU library, not the portable set) in {self.library.parent}"


_VARIANT = re.compile(r"^libggml-cpu-(.+)\.(?:so|dylib|dll)$|^ggml-cpu-(.+)\.dll$")


def cpu_backend() -> CpuBackend:
    """The CPU backend llama.cpp uses, loading it first where needed (`ensure_backends`)."""
    searched = tuple(backend_folders())
    if not ensure_backends():
        return CpuBackend(None, (), searched)
    dev = _g.dev_by_type(DEVICE_CPU)
    reg = _g.dev_backend_reg(dev) if dev else None
    library = _library_of(reg) if reg else None
    variants: tuple[str, ...] = ()
    if library is not None and _VARIANT.match(library.name):
        found = (_VARIANT.match(p.name) for p in sorted(library.parent.iterdir()))
        variants = tuple(m.group(1) or m.group(2) for m in found if m)
    return CpuBackend(library, variants, searched)


def _extra_array() -> Optional[ctypes.Array]:
    """llama.cpp's NULL-terminated array of the CPU's extra buffer types (None: this build has none)."""
    dev = _g.dev_by_type(DEVICE_CPU)
    if not dev:
        return None
    reg = _g.dev_backend_reg(dev)
    fn = _g.reg_get_proc_address(reg, b"ggml_backend_dev_get_extra_bufts") if reg else None
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
    return (_g.buft_name(buft) or b"?").decode("utf-8", errors="replace")


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
