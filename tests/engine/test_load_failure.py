"""A model llama.cpp refuses says what is known: the file's sha256 and size against its manifest, the
model's architecture, the CPU backend loaded; "truncated or corrupt" only for a file no manifest vouches
for, never for one whose checksum matches. Real files, a real llama.cpp (no GPU needed)."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from ondevice import ModelFileError, Settings
from ondevice.engine import hardware, load_failure
from ondevice.engine.llama import LlamaModel
from ondevice.models.assets import sha256_file, standin_manifest


def _gguf_of_architecture(path: Path, arch: str) -> Path:
    """A GGUF v3 file with no tensors and one key, general.architecture = `arch`."""
    def string(text: str) -> bytes:
        return struct.pack("<Q", len(text)) + text.encode()
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + string("general.architecture")
                     + struct.pack("<I", 8) + string(arch))
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(ModelFileError) as info:
        LlamaModel(path, Settings(n_ctx=256).load)
    return str(info.value)


def test_an_unknown_architecture_is_named_with_the_file_and_the_backend(tmp_path):
    path = _gguf_of_architecture(tmp_path / "odd.gguf", "nosucharch")
    message = _load_error(path)
    assert "does not know the model architecture 'nosucharch'" in message and "model architecture: nosucharch" in message
    assert f"sha256 {sha256_file(path)}, {path.stat().st_size} bytes; no manifest lists it" in message
    assert "truncated or corrupt" not in message  # llama.cpp said what is wrong
    backend = hardware.cpu_backend()
    assert backend.library is not None and f"CPU backend: {backend.describe()}" in message


def test_a_truncated_stand_in_is_measured_against_its_manifest(tmp_path, standin_path):
    source = standin_manifest()["source"]
    bad = tmp_path / Path(source["file"]).name  # named as the stand-in's file: its manifest is found by name
    with open(standin_path, "rb") as src, open(bad, "wb") as dst:
        dst.write(src.read(40_000_000))
    message = _load_error(bad)
    assert f"does not match the manifest of smollm2-135m-instruct: expected sha256 {source['sha256']}, " \
           f"{source['size']} bytes, got sha256 {sha256_file(bad)}, 40000000 bytes " \
           f"({source['size'] - 40_000_000} bytes short: truncated)" in message
    assert f"reinstall it: {source['install']}" in message
    assert "data is not within the file bounds" in message  # llama.cpp's own words


def test_the_stand_in_matches_its_manifest_in_sha256_and_size(standin_path):
    check = load_failure.check_file(standin_path)
    assert check.alias == "smollm2-135m-instruct" and check.matches, check
    assert check.size == standin_path.stat().st_size == standin_manifest()["source"]["size"]


def test_a_file_whose_checksum_matches_is_never_called_truncated_or_corrupt(tmp_path, standin_path):
    # A real file llama.cpp refuses (an absurd tensor count), vouched for by a manifest of its own.
    bad = tmp_path / "vouched.gguf"
    shutil.copy(standin_path, bad)
    with open(bad, "r+b") as fh:
        fh.seek(8)
        fh.write((2**40).to_bytes(8, "little"))
    refused = _load_error(bad)  # no manifest lists it: llama.cpp's refusal, and "may be" corrupt
    assert "no manifest lists it" in refused and "truncated or corrupt" in refused

    reason = refused.split("llama.cpp: ", 1)[1].split("): the file", 1)[0]
    known = {"vouched": {"alias": "vouched", "source": {"sha256": sha256_file(bad), "size": bad.stat().st_size,
                                                        "install": "pip install vouched"}}}
    message = load_failure.explain(bad, reason, [], known)
    assert "a file that is intact" in message and "matches the manifest of vouched" in message
    assert "truncated or corrupt" not in message and reason in message
    assert f"CPU backend: {hardware.cpu_backend().describe()}" in message


def test_no_backend_blames_the_build_not_the_file(tmp_path, standin_path):
    known = {"smollm2-135m-instruct": {"source": {"sha256": sha256_file(standin_path), "size": standin_path.stat().st_size}}}
    reason = ("llama_model_load_from_file_impl: no backends are loaded. hint: use ggml_backend_load() or "
              "ggml_backend_load_all() to load a backend before calling this function")
    message = load_failure.explain(standin_path, reason, [], known)
    assert "it has no backend loaded, so no model can load" in message
    assert "the build is at fault, not the file" in message and "matches the manifest of smollm2-135m-instruct" in message
    assert "truncated or corrupt" not in message and "reinstall llama-cpp-python" in message
