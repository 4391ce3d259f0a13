"""What ondevice knows when llama.cpp refuses a model file: the file against its manifest, the model's
architecture, the CPU backend llama.cpp loaded, and what llama.cpp logged.

llama.cpp answers a failed load with NULL and a log; "truncated or corrupt" is said only of a file that
matches no manifest (we cannot tell then), and a file whose sha256 matches its manifest is called intact,
so the blame goes where it belongs (the build, its backend, an architecture this llama.cpp lacks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import llama_cpp

from . import hardware
from ..models.assets import sha256_file
from ..models.catalog import manifests

_ARCH = re.compile(r"general\.architecture\s+str\s+=\s+(\S+)")
_UNKNOWN_ARCH = re.compile(r"unknown model architecture: '([^']*)'")
NO_BACKEND = "no backends are loaded"


@dataclass(frozen=True)
class FileCheck:
    """A model file against the manifests: `alias` of the manifest that lists it (by checksum, else by
    file name), `matches` whether its sha256 (and size, where the manifest has one) agree."""

    sha256: str
    size: int
    alias: Optional[str]
    expected_sha256: Optional[str]
    expected_size: Optional[int]

    @property
    def matches(self) -> bool:
        return self.alias is not None and self.expected_sha256 == self.sha256 and self.expected_size in (None, self.size)

    def describe(self) -> str:
        got = f"sha256 {self.sha256}, {self.size} bytes"
        if self.alias is None:
            return f"{got}; no manifest lists it"
        if self.matches:
            return f"{got}: matches the manifest of {self.alias}"
        expected = f"sha256 {self.expected_sha256}" + (f", {self.expected_size} bytes" if self.expected_size else "")
        short = (f" ({self.expected_size - self.size} bytes short: truncated)"
                 if self.expected_size and self.size < self.expected_size else "")
        return f"does not match the manifest of {self.alias}: expected {expected}, got {got}{short}"


def check_file(path: Path, known: Optional[dict[str, dict]] = None) -> FileCheck:
    """Hash `path` and find its manifest: the one whose sha256 it has, else the one whose file it is named
    as (the stand-in's file name, or `<alias>.<QUANT>.gguf` as `ondevice pull` writes)."""
    known = manifests() if known is None else known
    digest, size = sha256_file(path), path.stat().st_size
    by_name = None
    for alias, manifest in known.items():
        source = manifest.get("source", {})
        expected = source.get("sha256")
        if expected == digest:
            return FileCheck(digest, size, alias, expected, source.get("size"))
        if expected and (path.name == Path(source.get("file", "")).name or path.name.startswith(f"{alias}.")):
            by_name = FileCheck(digest, size, alias, expected, source.get("size"))
    return by_name or FileCheck(digest, size, None, None, None)


def architecture(log_lines: Sequence[str]) -> Optional[str]:
    """The model's architecture as llama.cpp read it from the file (its metadata dump or its refusal)."""
    for line in log_lines:
        found = _ARCH.search(line) or _UNKNOWN_ARCH.search(line)
        if found:
            return found.group(1)
    return None


def explain(path: Path, reason: str, log_lines: Sequence[str], known: Optional[dict[str, dict]] = None) -> str:
    """The message of a failed load: what is known about the file, the model and the build, and what to do.
    `reason`: the error lines llama.cpp logged; `log_lines`: its recent log (for the architecture)."""
    known = manifests() if known is None else known
    file = check_file(path, known)
    backend = hardware.cpu_backend()
    arch = architecture(log_lines)
    build = ((f"model architecture: {arch}; " if arch else "") + f"llama-cpp-python {llama_cpp.__version__}, "
             f"CPU backend: {backend.describe()}" + (f"; llama.cpp: {reason}" if reason else ""))
    if backend.library is None or NO_BACKEND in reason:
        return (f"llama.cpp could not load {path}: it has no backend loaded, so no model can load ({build}); "
                f"the build is at fault, not the file (file: {file.describe()}): reinstall llama-cpp-python "
                "(bash scripts/setup, or the portable wheelhouse) and check with `ondevice doctor`")
    unknown = _UNKNOWN_ARCH.search(reason)
    if unknown:
        return (f"llama.cpp could not load {path}: llama-cpp-python {llama_cpp.__version__} does not know the model "
                f"architecture {unknown.group(1)!r} (file: {file.describe()}; {build}): install a llama-cpp-python "
                "that supports it, or use a model of an architecture this one knows")
    if file.matches:
        return (f"llama.cpp could not load {path}, a file that is intact (file: {file.describe()}): {build}; "
                "run `ondevice doctor` and report it with these facts")
    if file.alias is not None:
        return (f"llama.cpp could not load {path}: the file {file.describe()}: reinstall it: "
                f"{known_install(file.alias, known)} ({build})")
    return (f"llama.cpp could not load {path} (file: {file.describe()}; {build}): the file is truncated or corrupt, "
            f"or its architecture is not supported by llama-cpp-python {llama_cpp.__version__}; "
            "re-download or re-convert it")


def known_install(alias: str, known: dict[str, dict]) -> str:
    """How to get a model again, from its manifest."""
    manifest = known.get(alias, {})
    return manifest.get("source", {}).get("install") or f"ondevice pull {alias} --force"
