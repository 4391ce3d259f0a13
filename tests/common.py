"""What many tests share: the repository's paths, the examples with their pinned date, the second
model's alias. Fixtures live in tests/conftest.py."""

from __future__ import annotations

from pathlib import Path

from ondevice.paths import examples_dir
from ondevice_bench.examples import PINNED_DATE, example_names, load_example  # noqa: F401 (re-exported to the tests)

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = examples_dir()
# shared/ sits beside the checkout; a git worktree (wt/NAME) finds it one level further up
SHARED = next((p for p in (REPO.parent / "shared", REPO.parent.parent / "shared") if p.is_dir()), REPO.parent / "shared")
QWEN_ALIAS = "qwen2.5-coder-0.5b-instruct"
EXAMPLE_NAMES = example_names()


def nest_objects(depth: int) -> dict:
    """A parameters schema of `depth` objects, each the only property of the one around it (2 * depth + 1
    levels of JSON): hostile input for the depth limits."""
    schema: dict = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "object", "properties": {"a": schema}}
    return schema


def batch_texts(caller, batch, settings) -> list[str]:
    """The answers' texts of `batch` ((tools, query) pairs) decoded together, one engine batch (the
    caller's tool format; `settings` as for each alone)."""
    from ondevice.formats.prompt import prepare_messages

    engine, fmt = caller.engine, caller.tool_format(settings)
    sessions = [engine.open(prepare_messages(q, t, None, fmt), t, settings, query=q) for t, q in batch]
    done = {}
    while engine.active:
        for session, error in engine.step():
            assert error is None, error
            done[id(session)] = engine.result(session).text
    return [done[id(x)] for x in sessions]
