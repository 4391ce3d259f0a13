"""Errors of the export step; all are `OndeviceError`s, so the CLI prints them and exits 2."""

from __future__ import annotations

from ondevice.errors import OndeviceError


class ConversionError(OndeviceError, RuntimeError):
    """A checkpoint cannot be converted or quantized; the message says what to change."""


class UnsupportedArchitectureError(ConversionError, ValueError):
    """The checkpoint is not a Llama-architecture causal LM (or uses a feature we cannot write)."""


class MissingFileError(ConversionError, FileNotFoundError):
    """A file the conversion needs (config.json, tokenizer.json, *.safetensors, ...) is absent."""


class UnknownQuantError(ConversionError, ValueError):
    """The requested quantization type is not one this converter offers."""
