"""Shared fixtures: one loaded stand-in model, and one loaded model trained for tool calls
(Qwen2.5-Coder-0.5B-Instruct, assembled from its PyPI chunks into the temp ONDEVICE_HOME that
tests/conftest.py sets; scripts/setup --dev installs the chunks)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ondevice import Settings, ToolCaller
from ondevice.assets import standin_gguf_path
from ondevice.examples import PINNED_DATE, example_names, load_example  # noqa: F401 (re-exported to the tests)
from ondevice.paths import examples_dir

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = examples_dir()
# shared/ sits beside the checkout; a git worktree (wt/NAME) finds it one level further up
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), REPO.parent / "shared")
QWEN_ALIAS = "qwen2.5-coder-0.5b-instruct"
EXAMPLE_NAMES = example_names()


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

