"""The model card's seven examples (tools, queries, the answers the card reports), shipped with the package.

Tests and benchmarks read them from here, with the same pinned "Today Date", so their prompts are the
same every run.
"""

from __future__ import annotations

import json
from typing import Any, Optional

from ondevice.paths import examples_dir

PINNED_DATE = "26 Jul 2024"  # the Llama 3.2 template's "Today Date" line, pinned by tests and benchmarks


def example_names() -> list[str]:
    """The examples' names (folders holding case.json and tools.json), sorted."""
    root = examples_dir()
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / "case.json").is_file() and (p / "tools.json").is_file())


def load_example(name: str) -> tuple[list[Any], dict[str, Any]]:
    """One example: (its tools, its case: queries, card_answers, ...)."""
    folder = examples_dir() / name
    if not (folder / "case.json").is_file():
        raise FileNotFoundError(f"no example {name!r} under {examples_dir()}: expected one of {example_names()}")
    return json.loads((folder / "tools.json").read_text()), json.loads((folder / "case.json").read_text())


def card_examples(limit: Optional[int] = None) -> list[dict[str, Any]]:
    """Each example's first query as {name, query, tools, answer}, get_weather ("simple") first."""
    found = []
    for name in example_names():
        tools, case = load_example(name)
        queries = case.get("queries") or []
        if not queries:
            continue
        answers = case.get("card_answers") or [None]
        found.append({"name": name, "query": queries[0], "tools": tools, "answer": answers[0]})
    if not found:
        raise FileNotFoundError(f"no examples under {examples_dir()}: expected <name>/case.json and tools.json")
    found.sort(key=lambda e: (e["name"] != "simple", e["name"]))
    return found[:limit] if limit else found
