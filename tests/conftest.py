"""Fixtures for every test: a temp ONDEVICE_HOME (no test touches the user's cache) and offline hub access."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", autouse=True)
def ondevice_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("ondevice-home")
    mp = pytest.MonkeyPatch()
    mp.setenv("ONDEVICE_HOME", str(home))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield home
    mp.undo()
