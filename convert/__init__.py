"""ondevice's export step: BF16 Hugging Face Llama checkpoint -> GGUF -> llama.cpp-quantized GGUF.

Not needed at run time: the runtime in `ondevice/` only reads the resulting GGUF files. Names are
imported lazily so that `ondevice --help` does not pay for numpy/gguf.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ConversionResult": "api", "convert_checkpoint": "api", "quantize": "api",
    "ConversionError": "errors", "MissingFileError": "errors", "UnknownQuantError": "errors",
    "UnsupportedArchitectureError": "errors", "QUANT_TYPES": "quantizer",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'convert' has no attribute {name!r}")
