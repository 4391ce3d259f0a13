"""Shared fixtures: one loaded stand-in model (tests/conftest.py sets a temp ONDEVICE_HOME)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ondevice import Settings, ToolCaller
from ondevice.assets import standin_gguf_path

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# shared/ sits beside the checkout; a git worktree (wt/NAME) finds it one level further up
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), REPO.parent / "shared")
PINNED_DATE = "26 Jul 2024"


@pytest.fixture(scope="session")
def standin_path(ondevice_home: Path) -> Path:
    return standin_gguf_path()


@pytest.fixture(scope="session")
def caller(standin_path: Path) -> ToolCaller:
    with ToolCaller.load(str(standin_path), Settings(date_string=PINNED_DATE, n_ctx=4096)) as c:
        yield c


def load_example(name: str) -> tuple[list, dict]:
    folder = EXAMPLES / name
    return json.loads((folder / "tools.json").read_text()), json.loads((folder / "case.json").read_text())


EXAMPLE_NAMES = sorted(p.name for p in EXAMPLES.iterdir() if (p / "case.json").is_file())
