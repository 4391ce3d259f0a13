"""`ondevice convert` / `ondevice pull` through the real CLI, and hub sources from a local HF cache
(the hub itself is unreachable here: HF_HUB_OFFLINE=1 and a cache populated by the test)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ondevice_convert import MissingFileError, convert_checkpoint
from ondevice.gguf import read_header
from ondevice import paths
from ondevice.cli import build_parser, main

from .conftest import sigint_as_usual

REPO = "argilla/Llama-3.2-1B-Instruct-APIGen-FC-v0.1"
ALIAS = "llama-3.2-1b-apigen-fc"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def _hf_cache(root: Path, ckpt: Path, repo: str = REPO, commit: str = COMMIT, ref: str = "main") -> Path:
    """Lay out `ckpt` as huggingface_hub's cache does: blobs, snapshots/<commit>/, refs/<ref>."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    snap = repo_dir / "snapshots" / commit
    snap.mkdir(parents=True)
    (repo_dir / "blobs").mkdir()
    for f in ckpt.iterdir():
        blob = repo_dir / "blobs" / f"{f.name}.blob"
        shutil.copyfile(f, blob)
        (snap / f.name).symlink_to(os.path.relpath(blob, snap))
    (snap / "README.md").write_text("---\nlicense: llama3.2\nbase_model: meta-llama/Llama-3.2-1B-Instruct\n---\n# card\n")
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / ref).write_text(commit)
    return root


@pytest.fixture
def hf_cache(tmp_path: Path, tiny_ckpt: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    cache = _hf_cache(tmp_path / "hf-cache", tiny_ckpt)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ONDEVICE_HOME", str(tmp_path / "home"))
    return cache


def _help(*argv: str) -> str:
    with pytest.raises(SystemExit):
        build_parser().parse_args([*argv, "--help"])
    return ""


@pytest.mark.nomodel
def test_help_has_examples(capsys: pytest.CaptureFixture) -> None:
    for cmd in ("convert", "pull"):
        _help(cmd)
        out = capsys.readouterr().out
        assert "examples:" in out and f"ondevice {cmd} " in out
    _help("convert")
    assert "Q4_K_M" in capsys.readouterr().out


def test_hub_source_from_local_cache_offline(hf_cache: Path, tmp_path: Path) -> None:
    r = convert_checkpoint(REPO, tmp_path / "out", quant=None, progress=False)
    kv = read_header(r.paths["F16"]).kv
    assert r.paths["F16"].name == "Llama-3.2-1B-Instruct-APIGen-FC-v0.1.F16.gguf"
    assert kv["general.source.huggingface.repository"] == REPO
    assert kv["ondevice.source.revision"] == COMMIT
    assert kv["general.source.url"] == f"https://huggingface.co/{REPO}/tree/{COMMIT}"
    assert kv["general.license"] == "llama3.2"
    # pinning the commit resolves to the same snapshot
    r2 = convert_checkpoint(REPO, tmp_path / "out", quant=None, revision=COMMIT, progress=False)
    assert r2.skipped == ["F16"]


def test_hub_offline_cache_miss_is_clear(hf_cache: Path, tmp_path: Path) -> None:
    with pytest.raises(MissingFileError, match=r"not in the local Hugging Face cache and HF_HUB_OFFLINE=1"):
        convert_checkpoint("someone/not-cached", tmp_path / "out", progress=False)
    with pytest.raises(MissingFileError, match="v9"):
        convert_checkpoint(REPO, tmp_path / "out", revision="v9", progress=False)


def test_pull_writes_where_the_runtime_looks(hf_cache: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["pull", ALIAS, "--quiet"]) == 0
    target = paths.converted_model_path(ALIAS, "Q4_K_M")
    assert target.is_file()
    assert sorted(p.name for p in target.parent.iterdir()) == [target.name]  # no F16 or temp left
    assert "written" in capsys.readouterr().out
    mtime = target.stat().st_mtime_ns
    assert main(["pull", ALIAS, "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out and target.stat().st_mtime_ns == mtime
    assert main(["pull", ALIAS, "--quiet", "--force"]) == 0
    assert target.stat().st_mtime_ns > mtime
    import llama_cpp

    llm = llama_cpp.Llama(str(target), n_ctx=64, verbose=False)
    assert llm.n_vocab() == 128256


def test_pull_errors(hf_cache: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["pull", "no-such-model"]) == 2
    err = capsys.readouterr().err
    assert "unknown model alias 'no-such-model'" in err and ALIAS in err and "smollm2-135m-instruct" in err
    assert main(["pull", "smollm2-135m-instruct"]) == 2
    assert "nothing to pull" in capsys.readouterr().err
    assert main(["pull", ALIAS, "--quant", "Q9"]) == 2
    assert "expected --quant one of" in capsys.readouterr().err


def test_convert_cli_report_and_verify(tiny_ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "gguf"
    rc = main(["convert", str(tiny_ckpt), "--quant", "Q4_0", "--out", str(out), "--report", "--verify", "--quiet"])
    text = capsys.readouterr().out
    assert rc == 0, text
    assert "worst max |err|" in text and "blk.0.attn_q.weight" in text
    assert "tokenization: identical to tokenizer.json" in text
    assert sorted(p.name for p in out.iterdir()) == ["tiny-llama.F16.gguf", "tiny-llama.Q4_0.gguf"]
    assert main(["convert", str(tiny_ckpt), "--quant", "Q4_0", "--out", str(out), "--quiet"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert "no such directory" in capsys.readouterr().err


@pytest.mark.slow
def test_sigint_mid_write_leaves_nothing(tmp_path: Path, tokenizer_dir: Path) -> None:
    """A real interruption (Ctrl-C) while tensor data is being written leaves no .gguf and no .part."""
    from ondevice_bench.fixtures.synthetic import tiny_config, write_random_checkpoint

    ckpt = write_random_checkpoint(tmp_path / "wide", tiny_config(hidden_size=2048, intermediate_size=4096,
                                                                   num_attention_heads=32, num_key_value_heads=8),
                                   seed=0, tokenizer_dir=tokenizer_dir)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    proc = subprocess.Popen([sys.executable, "-m", "ondevice", "convert", str(ckpt), "--quant", "none",
                             "--outtype", "f32", "--out", str(out), "--quiet"], env=env,
                            stderr=subprocess.PIPE, text=True, preexec_fn=sigint_as_usual)
    deadline = time.time() + 60
    while time.time() < deadline:
        parts = list(out.glob("*.part")) if out.exists() else []
        if parts and parts[0].stat().st_size > 100 * 2**20:  # well into the tensor data
            break
        time.sleep(0.02)
    else:
        proc.kill()
        pytest.fail("conversion never got going")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert list(out.iterdir()) == []
