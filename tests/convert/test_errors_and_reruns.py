"""Clear errors, atomic outputs, no-op re-runs, sharded checkpoints."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from ondevice_convert import (ConversionError, MissingFileError, UnknownQuantError, UnsupportedArchitectureError,
                     convert_checkpoint)
from ondevice.gguf import read_header
from ondevice_convert.gguf_meta import tensor_rows
from ondevice.errors import OndeviceError


def _no_outputs(d: Path) -> bool:
    return not d.exists() or not [p for p in d.iterdir() if p.suffix in (".gguf", ".part")]


@pytest.mark.nomodel
def test_errors_are_ondevice_errors() -> None:
    for cls in (ConversionError, MissingFileError, UnknownQuantError, UnsupportedArchitectureError):
        assert issubclass(cls, OndeviceError)


def test_unsupported_architecture(tmp_ckpt, tmp_path: Path) -> None:
    ckpt = tmp_ckpt()
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg.update(architectures=["MistralForCausalLM"], model_type="mistral")
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedArchitectureError, match=r"expected architecture LlamaForCausalLM.*"
                                                           r"MistralForCausalLM.*'mistral'"):
        convert_checkpoint(ckpt, tmp_path / "out", progress=False)
    assert _no_outputs(tmp_path / "out")


def test_unsupported_rope_scaling(tmp_ckpt, tmp_path: Path) -> None:
    ckpt = tmp_ckpt()
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["rope_scaling"] = {"rope_type": "yarn", "factor": 4.0}
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(UnsupportedArchitectureError, match="rope_scaling type.*'yarn'"):
        convert_checkpoint(ckpt, tmp_path / "out", progress=False)


@pytest.mark.parametrize("missing,pattern", [
    ("config.json", r"expected config\.json"),
    ("tokenizer.json", r"expected tokenizer\.json"),
    ("model.safetensors", r"expected model\.safetensors or model\.safetensors\.index\.json"),
])
def test_missing_file(tmp_ckpt, tmp_path: Path, missing: str, pattern: str) -> None:
    ckpt = tmp_ckpt()
    (ckpt / missing).unlink()
    with pytest.raises(MissingFileError, match=pattern):
        convert_checkpoint(ckpt, tmp_path / "out", progress=False)
    assert _no_outputs(tmp_path / "out")


def test_missing_tensor(tmp_ckpt, tmp_path: Path) -> None:
    ckpt = tmp_ckpt(num_hidden_layers=3)  # config says 3 layers...
    cfg = json.loads((ckpt / "config.json").read_text())
    cfg["num_hidden_layers"] = 4  # ...and now 4: layer 3 is missing
    (ckpt / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConversionError, match=r"lacks tensors the config needs: model\.layers\.3\."):
        convert_checkpoint(ckpt, tmp_path / "out", progress=False)


@pytest.mark.nomodel
def test_missing_source(tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match="checkpoint directory or a hub repo id"):
        convert_checkpoint(tmp_path / "nope", tmp_path / "out", progress=False)


def test_unknown_quant_before_any_work(tmp_ckpt, tmp_path: Path) -> None:
    with pytest.raises(UnknownQuantError, match="got 'Q4_K_X'"):
        convert_checkpoint(tmp_ckpt(), tmp_path / "out", quant="Q4_K_X", progress=False)
    assert _no_outputs(tmp_path / "out")


def test_bad_tensor_mid_write_leaves_nothing(tmp_ckpt, tmp_path: Path) -> None:
    """A tensor stored in a dtype we cannot read fails the run half-way through the data section;
    neither the .gguf nor its temp .part file remains."""
    ckpt = tmp_ckpt()
    st = ckpt / "model.safetensors"
    raw = st.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    name = "model.layers.1.mlp.down_proj.weight"  # late in the file: earlier tensors get written
    assert header[name]["dtype"] == "BF16"
    header[name]["dtype"] = "I16"  # same size, unsupported
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (n - len(blob))
    st.write_bytes(raw[:8] + blob + raw[8 + n:])
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=r"down_proj.*expected dtype one of BF16, F16, F32, got I16"):
        convert_checkpoint(ckpt, out, quant=None, progress=False)
    assert out.is_dir() and list(out.iterdir()) == []


def test_rerun_is_noop_unless_force(tmp_ckpt, tmp_path: Path) -> None:
    ckpt = tmp_ckpt()
    out = tmp_path / "out"
    first = convert_checkpoint(ckpt, out, quant="Q8_0", progress=False)
    assert first.skipped == []
    mtimes = {k: p.stat().st_mtime_ns for k, p in first.paths.items()}
    second = convert_checkpoint(ckpt, out, quant="Q8_0", progress=False)
    assert second.skipped == ["Q8_0"]
    assert {k: first.paths[k].stat().st_mtime_ns for k in mtimes} == mtimes
    # a new quant reuses the up-to-date F16 file
    third = convert_checkpoint(ckpt, out, quant="Q4_0", progress=False)
    assert "F16" in third.skipped and third.paths["F16"].stat().st_mtime_ns == mtimes["F16"]
    forced = convert_checkpoint(ckpt, out, quant="Q8_0", force=True, progress=False)
    assert forced.skipped == []
    assert all(p.stat().st_mtime_ns > mtimes[k] for k, p in forced.paths.items() if k in mtimes)
    # changed inputs are not a no-op
    cfg = json.loads((ckpt / "tokenizer_config.json").read_text())
    cfg["chat_template"] += " "
    (ckpt / "tokenizer_config.json").write_text(json.dumps(cfg))
    changed = convert_checkpoint(ckpt, out, quant="Q8_0", progress=False)
    assert changed.skipped == []
    assert read_header(changed.paths["Q8_0"]).kv["tokenizer.chat_template"].endswith(" ")
    assert sorted(p.name for p in out.iterdir()) == ["ckpt.F16.gguf", "ckpt.Q4_0.gguf", "ckpt.Q8_0.gguf"]


def test_keep_float_false(tmp_ckpt, tmp_path: Path) -> None:
    r = convert_checkpoint(tmp_ckpt(), tmp_path, quant="Q4_0", keep_float=False, progress=False)
    assert list(r.paths) == ["Q4_0"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".gguf") == ["ckpt.Q4_0.gguf"]


@pytest.mark.parametrize("outtype", ["bf16", "f32"])
def test_outtypes_and_sharded_source(tmp_path: Path, tokenizer_dir: Path, tiny_ckpt: Path, tiny_f16: Path,
                                     outtype: str) -> None:
    """A sharded checkpoint (index.json) gives the same weights; BF16 output is a bit copy, F32 exact."""
    from ondevice_bench.fixtures.synthetic import tiny_config, write_random_checkpoint
    from ondevice_convert.safetensors_reader import SafetensorsCheckpoint, bf16_bits_to_f32

    sharded = write_random_checkpoint(tmp_path / "sharded", tiny_config(), seed=1, shard_bytes=20 * 2**20,
                                      tokenizer_dir=tokenizer_dir)
    shards = sorted(p.name for p in sharded.glob("*.safetensors"))
    assert len(shards) > 1 and (sharded / "model.safetensors.index.json").is_file()
    r = convert_checkpoint(sharded, tmp_path / "out", quant=None, outtype=outtype, progress=False)
    path = r.paths[outtype.upper()]
    h = read_header(path)
    t = {x.name: x for x in h.tensors}
    hf = SafetensorsCheckpoint(tiny_ckpt)
    emb = np.asarray(tensor_rows(path, t["token_embd.weight"]))
    want = hf.read_f32("model.embed_tokens.weight")
    got = bf16_bits_to_f32(emb.view("<u2")) if outtype == "bf16" else emb.view("<f4")
    np.testing.assert_array_equal(got.reshape(want.shape), want)
    assert {x.name for x in h.tensors} == {x.name for x in read_header(tiny_f16).tensors}
