"""The speed benchmark's inputs: the card's examples, get_weather first, with their answers."""

from __future__ import annotations

from ondevice_bench.quant import answer_text
from ondevice_bench.examples import card_examples
import pytest

pytestmark = pytest.mark.nomodel


def test_card_examples_start_with_get_weather():
    examples = card_examples()
    assert examples[0]["name"] == "simple"
    assert [t["name"] for t in examples[0]["tools"]][0] == "get_weather"
    assert examples[0]["query"] == "What's the weather like in New York in fahrenheit?"
    assert len(card_examples(limit=2)) == 2
    assert len({e["name"] for e in examples}) == len(examples) >= 5


def test_answer_text_is_what_the_model_writes():
    calls = [{"name": "get_weather", "arguments": {"location": "New York", "unit": "fahrenheit"}}]
    assert answer_text(calls) == (
        '<tool_call>[{"name": "get_weather", "arguments": {"location": "New York", "unit": "fahrenheit"}}]</tool_call>'
    )
    assert answer_text("no tools") == "no tools"
    assert answer_text(None) == ""
