"""Fixtures for every test: a temp ONDEVICE_HOME (no test touches the user's cache), offline hub access,
and the stand-in pinned as the default model (ONDEVICE_MODEL), so a test without a model stays fast
whatever models are installed."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def ondevice_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ondevice-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ONDEVICE_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("ONDEVICE_MODEL", "smollm2-135m-instruct")
    yield home
    mp.undo()
